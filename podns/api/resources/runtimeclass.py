"""node.k8s.io/v1 RuntimeClasses: which container runtime (handler) a pod asks its node for.

Cluster-scoped. Validation is Kubernetes' `ValidateRuntimeClass`: the name a DNS subdomain,
`handler` a DNS label (required: the empty string fails the label rule, as in Kubernetes),
`overhead.podFixed` quantities as resource limits, `scheduling.nodeSelector` labels and
`scheduling.tolerations` with known operators/effects and no duplicates; `handler` is immutable
on update. HANDLER column, as kubectl prints it.

The pod side lives in `pod.py`: `spec.runtimeClassName` must name an existing RuntimeClass when
the pod is created (the RuntimeClass admission plugin), which also merges the class's scheduling
constraints and overhead into the pod. `lookup_key`/`admit_runtime_class` do that here so the
rule sits beside the kind it reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._podspec import validate_resources
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    duplicate,
    immutable,
    invalid,
    not_supported,
    validate_labels,
)
from podns.api.resources.base import AdmissionDenied, Column, FieldError, Obj
from podns.objects import names
from podns.store.errors import NotFound

if TYPE_CHECKING:
    from podns.store.interface import Store

#: the store key prefix of RuntimeClasses (`ResourceType.store_resource` of node.k8s.io runtimeclasses)
STORE_RESOURCE = "runtimeclasses.node.k8s.io"
TOLERATION_OPERATORS = ["Equal", "Exists"]
TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]


class RuntimeClassStrategy(KindStrategy):
    schema_type = "node.v1.RuntimeClass"
    namespaced = False

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        handler = obj.get("handler")
        errs = [invalid("handler", handler, m) for m in names.is_dns1123_label(str(handler or ""))]
        overhead = obj.get("overhead")
        if isinstance(overhead, dict) and overhead.get("podFixed") is not None:
            # Kubernetes validates podFixed as the limits of a ResourceRequirements at `overhead`
            errs.extend(validate_resources("overhead", {"limits": overhead["podFixed"]}))
        scheduling = obj.get("scheduling")
        if isinstance(scheduling, dict):
            errs.extend(validate_labels("scheduling.nodeSelector", scheduling.get("nodeSelector")))
            errs.extend(_validate_tolerations("scheduling.tolerations", scheduling.get("tolerations")))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("handler", new.get("handler"), old.get("handler"))

    def columns(self) -> list[Column]:
        return [Column("Handler", priority=0, description="Handler specifies the underlying runtime "
                       "and configuration that the CRI implementation will use to handle pods of "
                       "this class."), AGE]

    def cells(self, obj: Obj) -> list[Any]:
        return [obj.get("handler") or ""]


def _validate_tolerations(path: str, tolerations: Any) -> list[FieldError]:
    """Known operator and effect, a value only with Equal, no duplicate (key, operator, value,
    effect): Kubernetes' ValidateTolerations plus RuntimeClass's uniqueness rule."""
    if not isinstance(tolerations, list):
        return []
    errs: list[FieldError] = []
    seen: set[tuple[Any, ...]] = set()
    for i, tol in enumerate(tolerations):
        p = f"{path}[{i}]"
        if not isinstance(tol, dict):
            errs.append(invalid(p, tol, "must be an object"))
            continue
        op = tol.get("operator") or "Equal"
        if op not in TOLERATION_OPERATORS:
            errs.append(not_supported(f"{p}.operator", op, TOLERATION_OPERATORS))
        if op == "Exists" and tol.get("value"):
            errs.append(invalid(f"{p}.operator", tol.get("value"),
                                "value must be empty when `operator` is 'Exists'"))
        if tol.get("effect") and tol["effect"] not in TAINT_EFFECTS:
            errs.append(not_supported(f"{p}.effect", tol["effect"], TAINT_EFFECTS))
        if tol.get("key"):
            errs.extend(invalid(f"{p}.key", tol["key"], m) for m in names.is_qualified_name(str(tol["key"])))
        key = (tol.get("key") or "", op, tol.get("value") or "", tol.get("effect") or "")
        if key in seen:
            errs.append(duplicate(p, tol))
        seen.add(key)
    return errs


async def admit_runtime_class(pod: Obj, store: Store) -> None:
    """The RuntimeClass admission plugin on a new pod: `spec.runtimeClassName` must name an
    existing RuntimeClass (else AdmissionDenied with Kubernetes' message); its
    `scheduling.nodeSelector` is merged into the pod's (a conflicting value is denied), its
    tolerations are added, and its `overhead.podFixed` becomes `spec.overhead` (a pod that
    already sets another overhead is denied)."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    name = spec.get("runtimeClassName")
    if not name:
        if spec.get("overhead"):
            raise AdmissionDenied("pod rejected: Pod Overhead set without corresponding RuntimeClass "
                                  "defined Overhead")
        return
    try:
        rc = await store.get(f"{STORE_RESOURCE}/{name}")
    except NotFound:
        raise AdmissionDenied(f'pod rejected: RuntimeClass "{name}" not found') from None
    fixed = (rc.get("overhead") or {}).get("podFixed")
    if spec.get("overhead") and spec["overhead"] != fixed:
        raise AdmissionDenied("pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"
                              if fixed else "pod rejected: Pod Overhead set without corresponding "
                              "RuntimeClass defined Overhead")
    if fixed:
        spec["overhead"] = dict(fixed)
    scheduling = rc.get("scheduling") or {}
    selector = scheduling.get("nodeSelector") or {}
    if selector:
        merged = dict(spec.get("nodeSelector") or {})
        for key, value in selector.items():
            if key in merged and merged[key] != value:
                raise AdmissionDenied(
                    f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                    f"pod.spec.nodeSelector[{key}] = {merged[key]}")
            merged[key] = value
        spec["nodeSelector"] = merged
    extra = [t for t in scheduling.get("tolerations") or [] if t not in (spec.get("tolerations") or [])]
    if extra:
        spec["tolerations"] = [*(spec.get("tolerations") or []), *extra]
