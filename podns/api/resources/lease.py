"""coordination.k8s.io/v1 Leases (leader election, node heartbeats): duration and
transition counts validated as Kubernetes does; HOLDER column."""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import invalid, validate_non_negative
from podns.api.resources.base import Column, FieldError, Obj


class LeaseStrategy(KindStrategy):
    schema_type = "coordination.v1.Lease"
    allow_create_on_update = True  # kube-apiserver: a PUT may create a Lease

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not isinstance(duration, int) or duration <= 0):
            errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        errs.extend(validate_non_negative("spec.leaseTransitions", spec.get("leaseTransitions")))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Holder", description="The holder of the lease"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [(obj.get("spec") or {}).get("holderIdentity") or ""]
