"""Deployments (apps/v1): defaults, validation with Kubernetes' messages, printing.

Defaults as Kubernetes 1.33 (`SetDefaults_Deployment`): replicas 1, strategy RollingUpdate with
maxSurge and maxUnavailable 25%, revisionHistoryLimit 10, progressDeadlineSeconds 600, the
template's PodSpec defaults; a new Deployment's status is `{}`. Validation
(`ValidateDeploymentSpec`): a non-empty selector matching the template's labels, restartPolicy
Always, strategy type Recreate (without rollingUpdate) or RollingUpdate (maxSurge/maxUnavailable
non-negative ints or percents, not both 0, maxUnavailable at most 100%), non-negative counts,
progressDeadlineSeconds greater than minReadySeconds; the selector is immutable in apps/v1.
The generation moves with the spec and with annotations (Kubernetes bumps it for both).
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig, forbidden, immutable, invalid, not_supported, required
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import Column, FieldError, Obj

STRATEGIES = ["Recreate", "RollingUpdate"]


class DeploymentStrategy(KindStrategy):
    schema_type = "apps.v1.Deployment"
    subresources = ("status", "scale")

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        w.default_strategy(spec, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        w.default_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = non_negative("spec.replicas", spec.get("replicas"))
        selector = spec.get("selector")
        errs.extend(w.validate_selector("spec.selector", selector, "deployment"))
        errs.extend(w.validate_template("spec.template", spec.get("template"), selector))
        errs.extend(_validate_strategy(spec.get("strategy") or {}))
        errs.extend(non_negative("spec.minReadySeconds", spec.get("minReadySeconds")))
        errs.extend(non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit")))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            errs.extend(non_negative("spec.progressDeadlineSeconds", deadline))
            if isinstance(deadline, int) and deadline <= int(spec.get("minReadySeconds") or 0):
                errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                    "must be greater than minReadySeconds"))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return super().spec_changed(new, old) or (
            (new.get("metadata") or {}).get("annotations") != (old.get("metadata") or {}).get("annotations"))

    def columns(self) -> list[Column]:
        return [
            Column("Ready", description="Number of the pod with ready state"),
            Column("Up-to-date", description="Total number of non-terminating pods targeted by this "
                   "deployment that have the desired template spec."),
            Column("Available", description="Total number of available non-terminating pods (ready for "
                   "at least minReadySeconds) targeted by this deployment."),
            AGE,
            w.CONTAINERS,
            w.IMAGES,
            w.selector_column("Label selector for pods. Existing ReplicaSets whose pods are selected by "
                              "this will be the ones affected by this deployment. It must match the pod "
                              "template's labels."),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        status = obj.get("status") or {}
        return [
            f"{status.get('readyReplicas', 0)}/{dig(obj, 'spec', 'replicas', default=1)}",
            int(status.get("updatedReplicas", 0)),
            int(status.get("availableReplicas", 0)),
            *w.containers_cells(obj, "spec", "template"),
            w.selector_cell(dig(obj, "spec", "selector")),
        ]


def _validate_strategy(strategy: Obj) -> list[FieldError]:
    stype = strategy.get("type", "RollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if stype != "RollingUpdate":
        return [not_supported("spec.strategy.type", stype, STRATEGIES)]
    if not isinstance(rolling, dict):
        return [required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil")]
    return w.validate_rolling("spec.strategy.rollingUpdate", rolling)
