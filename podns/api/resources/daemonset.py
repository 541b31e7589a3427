"""DaemonSets (apps/v1): defaults, validation with Kubernetes' messages, printing.

Defaults (`SetDefaults_DaemonSet`): updateStrategy RollingUpdate with maxUnavailable 1 and
maxSurge 0, revisionHistoryLimit 10, the template's PodSpec defaults; a new DaemonSet's status
has its four always-written counts at 0. Validation (`ValidateDaemonSetSpec`): a non-empty
selector matching the template's labels, restartPolicy Always, updateStrategy RollingUpdate or
OnDelete, maxUnavailable/maxSurge non-negative ints or percents, not both 0. The selector is
immutable. (The controller rolls with maxSurge 0 whatever is set: surge is not implemented.)
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE, format_labels
from podns.api.resources._validation import dig, immutable, not_supported, required
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import Column, FieldError, Obj

STRATEGIES = ["OnDelete", "RollingUpdate"]


class DaemonSetStrategy(KindStrategy):
    schema_type = "apps.v1.DaemonSet"
    subresources = ("status",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0, "desiredNumberScheduled": 0,
                "numberReady": 0}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        w.default_strategy(spec, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
        spec.setdefault("revisionHistoryLimit", 10)
        w.default_template(spec.get("template"))

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        selector = spec.get("selector")
        errs = w.validate_selector("spec.selector", selector, "daemonset")
        errs.extend(w.validate_template("spec.template", spec.get("template"), selector,
                                        deadline_kind=None))
        errs.extend(non_negative("spec.minReadySeconds", spec.get("minReadySeconds")))
        errs.extend(non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit")))
        strategy = spec.get("updateStrategy") or {}
        stype = strategy.get("type", "RollingUpdate")
        if stype not in STRATEGIES:
            errs.append(not_supported("spec.updateStrategy.type", stype, STRATEGIES))
        rolling = strategy.get("rollingUpdate")
        if stype == "RollingUpdate" and isinstance(rolling, dict):
            errs.extend(w.validate_rolling("spec.updateStrategy.rollingUpdate", rolling))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("spec.selector", dig(new, "spec", "selector"), dig(old, "spec", "selector"))

    def columns(self) -> list[Column]:
        return [
            Column("Desired", type="integer", description="The total number of nodes that should be "
                   "running the daemon pod (including nodes correctly running the daemon pod)."),
            Column("Current", type="integer", description="The number of nodes that are running at "
                   "least 1 daemon pod and are supposed to run the daemon pod."),
            Column("Ready", type="integer", description="numberReady is the number of nodes that should "
                   "be running the daemon pod and have one or more of the daemon pod running with a "
                   "Ready Condition."),
            Column("Up-to-date", type="integer", description="The total number of nodes that are running "
                   "updated daemon pod"),
            Column("Available", type="integer", description="The number of nodes that should be running "
                   "the daemon pod and have one or more of the daemon pod running and available (ready "
                   "for at least spec.minReadySeconds)"),
            Column("Node Selector", description="NodeSelector is a selector which must be true for the "
                   "pod to fit on a node. Selector which must match a node's labels for the pod to be "
                   "scheduled on that node."),
            AGE,
            w.CONTAINERS,
            w.IMAGES,
            w.selector_column("A label query over pods that are managed by the daemon set. Must match "
                              "in order to be controlled. It must match the pod template's labels."),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        status = obj.get("status") or {}
        return [
            int(status.get("desiredNumberScheduled", 0)),
            int(status.get("currentNumberScheduled", 0)),
            int(status.get("numberReady", 0)),
            int(status.get("updatedNumberScheduled", 0)),
            int(status.get("numberAvailable", 0)),
            format_labels(dig(obj, "spec", "template", "spec", "nodeSelector")),
            *w.containers_cells(obj, "spec", "template"),
            w.selector_cell(dig(obj, "spec", "selector")),
        ]
