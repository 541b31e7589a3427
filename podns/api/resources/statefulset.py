"""StatefulSets (apps/v1): the defaults that drive `kubectl rollout status`, validation,
immutable fields, and printing.

Defaults as Kubernetes 1.33: replicas 1, podManagementPolicy OrderedReady, updateStrategy
RollingUpdate with partition 0, revisionHistoryLimit 10, persistentVolumeClaimRetentionPolicy
Retain/Retain, the template's PodSpec defaults; a new StatefulSet's status is `{replicas: 0,
availableReplicas: 0}` (the Python client rejects a status without `replicas`). The selector
must select the template's labels. Only replicas, template, updateStrategy,
persistentVolumeClaimRetentionPolicy, minReadySeconds, ordinals and revisionHistoryLimit may
change.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._podspec import default_pod_spec, validate_pod_spec
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    dig,
    forbidden,
    invalid,
    not_supported,
    required,
    validate_label_selector,
    validate_labels,
    validate_non_negative,
)
from podns.api.resources._workload import default_strategy
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import names
from podns.objects.selectors import SelectorError, selector_from_label_selector

POD_MANAGEMENT = ["OrderedReady", "Parallel"]
UPDATE_STRATEGIES = ["OnDelete", "RollingUpdate"]
RETENTION = ["Delete", "Retain"]
_UPDATABLE = (
    "replicas", "ordinals", "template", "updateStrategy", "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds", "revisionHistoryLimit",
)
STS_UPDATE_MESSAGE = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
    "'minReadySeconds' are forbidden"
)


class StatefulSetStrategy(KindStrategy):
    schema_type = "apps.v1.StatefulSet"
    subresources = ("status", "scale")

    def initial_status(self, obj: Obj) -> Obj:
        return {"replicas": 0, "availableReplicas": 0}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        spec.setdefault("revisionHistoryLimit", 10)
        default_strategy(spec, "updateStrategy", {"partition": 0})
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        if isinstance(policy, dict):
            policy.setdefault("whenDeleted", "Retain")
            policy.setdefault("whenScaled", "Retain")
        template = spec.get("template")
        if isinstance(template, dict):
            if isinstance(template.get("spec"), dict):
                default_pod_spec(template["spec"])
            md = template.get("metadata")
            if isinstance(md, dict):
                md.setdefault("creationTimestamp", None)
        for claim in spec.get("volumeClaimTemplates") or []:
            if isinstance(claim, dict):
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                if isinstance(claim.get("spec"), dict):
                    claim["spec"].setdefault("volumeMode", "Filesystem")
                claim.setdefault("status", {"phase": "Pending"})
        if isinstance(obj.get("status"), dict):
            obj["status"].setdefault("replicas", 0)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        for field in ("replicas", "revisionHistoryLimit", "minReadySeconds"):
            errs.extend(validate_non_negative(f"spec.{field}", spec.get(field)))
        pmp = spec.get("podManagementPolicy", "OrderedReady")
        if pmp not in POD_MANAGEMENT:
            errs.append(not_supported("spec.podManagementPolicy", pmp, POD_MANAGEMENT))
        errs.extend(_validate_update_strategy(spec.get("updateStrategy") or {}))
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for field in ("whenDeleted", "whenScaled"):
            value = policy.get(field, "Retain")
            if value not in RETENTION:
                errs.append(not_supported(
                    f"spec.persistentVolumeClaimRetentionPolicy.{field}", value, RETENTION))
        if spec.get("serviceName"):
            errs.extend(invalid("spec.serviceName", spec["serviceName"], m)
                        for m in names.is_dns1123_label(str(spec["serviceName"])))
        errs.extend(_validate_selector_and_template(spec))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
        rest_new = {k: v for k, v in nspec.items() if k not in _UPDATABLE}
        rest_old = {k: v for k, v in ospec.items() if k not in _UPDATABLE}
        if rest_new != rest_old:
            return [forbidden("spec", STS_UPDATE_MESSAGE)]
        return []

    def columns(self) -> list[Column]:
        return [
            Column("Ready", description="Number of the pod with ready state"),
            AGE,
            Column("Containers", priority=1, description="Names of each container in the template."),
            Column("Images", priority=1, description="Images referenced by each container in the template."),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        containers = dig(obj, "spec", "template", "spec", "containers", default=[])
        return [
            f"{dig(obj, 'status', 'readyReplicas', default=0)}/{dig(obj, 'spec', 'replicas', default=1)}",
            ",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers),
        ]


def _validate_update_strategy(strategy: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    stype = strategy.get("type", "RollingUpdate")
    if stype not in UPDATE_STRATEGIES:
        errs.append(not_supported("spec.updateStrategy.type", stype, UPDATE_STRATEGIES))
    rolling = strategy.get("rollingUpdate")
    if rolling is not None and stype == "OnDelete":
        errs.append(forbidden("spec.updateStrategy.rollingUpdate",
                              "only allowed for updateStrategy 'RollingUpdate'"))
    if isinstance(rolling, dict):
        errs.extend(validate_non_negative(
            "spec.updateStrategy.rollingUpdate.partition", rolling.get("partition")))
    return errs


def _validate_selector_and_template(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    selector = spec.get("selector")
    if not selector:
        errs.append(required("spec.selector"))
    else:
        errs.extend(validate_label_selector("spec.selector", selector))
        if not selector.get("matchLabels") and not selector.get("matchExpressions"):
            errs.append(invalid("spec.selector", selector, "empty selector is invalid for statefulset"))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, required("spec.template")]
    labels = dig(template, "metadata", "labels", default={})
    errs.extend(validate_labels("spec.template.metadata.labels", labels))
    if selector and not errs:
        try:
            matches = selector_from_label_selector(selector).matches(labels)
        except SelectorError:
            matches = True  # already reported by validate_label_selector
        if not matches:
            errs.append(invalid("spec.template.metadata.labels", labels,
                                "`selector` does not match template `labels`"))
    errs.extend(validate_pod_spec(
        "spec.template.spec", template.get("spec"),
        extra_volumes={
            str(dig(c, "metadata", "name", default="")) for c in spec.get("volumeClaimTemplates") or []
        },
    ))
    restart = dig(template, "spec", "restartPolicy", default="Always")
    if restart != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        if not dig(claim, "metadata", "name"):
            errs.append(required(f"spec.volumeClaimTemplates[{i}].metadata.name"))
    return errs
