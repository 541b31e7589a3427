"""ReplicaSets (apps/v1): defaults, validation with Kubernetes' messages, printing.

Defaults: replicas 1, the template's PodSpec defaults; a new ReplicaSet's status is
`{replicas: 0}`. Validation (`ValidateReplicaSetSpec`): non-negative replicas and
minReadySeconds, a non-empty selector matching the template's labels, restartPolicy Always; the
selector is immutable in apps/v1.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig, immutable, required
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import Column, FieldError, Obj


class ReplicaSetStrategy(KindStrategy):
    schema_type = "apps.v1.ReplicaSet"
    subresources = ("status", "scale")

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        w.default_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = non_negative("spec.replicas", spec.get("replicas"))
        errs.extend(non_negative("spec.minReadySeconds", spec.get("minReadySeconds")))
        selector = spec.get("selector")
        errs.extend(w.validate_selector("spec.selector", selector, "deployment"))
        errs.extend(w.validate_template("spec.template", spec.get("template"), selector))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))

    def columns(self) -> list[Column]:
        return [
            Column("Desired", type="integer", description="Replicas is the number of desired pods. This "
                   "is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. "
                   "More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/"
                   "#what-is-a-replicaset"),
            Column("Current", type="integer", description="Replicas is the most recently observed number "
                   "of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/"
                   "controllers/replicaset/#what-is-a-replicaset"),
            Column("Ready", type="integer", description="The number of non-terminating pods targeted by "
                   "this ReplicaSet with a Ready Condition."),
            AGE,
            w.CONTAINERS,
            w.IMAGES,
            w.selector_column("Selector is a label query over pods that should match the replica count. "
                              "Label keys and values that must match in order to be controlled by this "
                              "replica set. It must match the pod template's labels. More info: "
                              "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
                              "#label-selectors"),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        status = obj.get("status") or {}
        return [
            int(dig(obj, "spec", "replicas", default=1)),
            int(status.get("replicas", 0)),
            int(status.get("readyReplicas", 0)),
            *w.containers_cells(obj, "spec", "template"),
            w.selector_cell(dig(obj, "spec", "selector")),
        ]
