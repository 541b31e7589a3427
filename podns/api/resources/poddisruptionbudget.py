"""PodDisruptionBudgets (policy/v1): validation with Kubernetes' messages, printing.

Validation (`ValidatePodDisruptionBudgetSpec`): at most one of minAvailable and maxUnavailable
(`minAvailable and maxUnavailable cannot be both set`), each a non-negative int or a percent of at
most 100%, a valid selector, unhealthyPodEvictionPolicy IfHealthyBudget or AlwaysAllow. A new
budget's status has its always-written counts at 0; the disruption controller fills it in and the
eviction subresource consumes it.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig, invalid, not_supported, required, validate_label_selector
from podns.api.resources.base import Column, FieldError, Obj

POLICIES = ["AlwaysAllow", "IfHealthyBudget"]


class PodDisruptionBudgetStrategy(KindStrategy):
    schema_type = "policy.v1.PodDisruptionBudget"
    subresources = ("status",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.append(invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        for field in ("minAvailable", "maxUnavailable"):
            value = spec.get(field)
            errs.extend(w.validate_int_or_percent(f"spec.{field}", value))
            errs.extend(w.not_more_than_100_percent(f"spec.{field}", value))
        errs.extend(validate_label_selector("spec.selector", spec.get("selector")))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in POLICIES:
            errs.append(not_supported("spec.unhealthyPodEvictionPolicy", policy, POLICIES))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Min Available", description="minAvailable is the minimum number of pods that must "
                   "be available after the eviction."),
            Column("Max Unavailable", description="maxUnavailable is the maximum number of pods that can "
                   "be unavailable after the eviction."),
            Column("Allowed Disruptions", type="integer", description="Number of pod disruptions that "
                   "are currently allowed."),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec = obj.get("spec") or {}
        return [
            "N/A" if spec.get("minAvailable") is None else spec["minAvailable"],
            "N/A" if spec.get("maxUnavailable") is None else spec["maxUnavailable"],
            int(dig(obj, "status", "disruptionsAllowed", default=0)),
        ]
