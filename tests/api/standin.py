"""A minimal stand-in for the served kinds, so the generic machinery is tested on its own.

Real kinds (with their validation and defaulting) live in `podns.api.resources`; these
Strategies implement just enough of the contract to exercise the handlers: a status split,
a scale subresource, a selectable field, graceful deletion and unknown-field detection.
"""

from __future__ import annotations

import copy

from podns.api.resources.base import Column, FieldError, Obj, ResourceType, Strategy


class _StatusSplit(Strategy):
    subresources = ("status",)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["status"] = copy.deepcopy(old.get("status", {}))

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        status = new.get("status")
        new.clear()
        new.update(copy.deepcopy(old))
        new["status"] = status

    def unknown_fields(self, obj: Obj) -> list[str]:
        known = {"apiVersion", "kind", "metadata", "spec", "status"}
        return sorted(k for k in obj if k not in known)

    def validate(self, obj: Obj) -> list[FieldError]:
        name = obj["metadata"].get("name", "")
        if len(name) > 63 or not name.replace("-", "").isalnum() or name != name.lower():
            return [FieldError("metadata.name", "FieldValueInvalid",
                               f'Invalid value: "{name}": a lowercase RFC 1123 label must '
                               "consist of lower case alphanumeric characters or '-'")]
        return []


class PodStrategy(_StatusSplit):
    subresources = ("status", "binding")
    selectable_fields = ("spec.nodeName", "status.phase")

    def deletion_grace_seconds(self, obj: Obj, requested: int | None) -> int:
        if not (obj.get("spec") or {}).get("nodeName"):
            return 0
        return 30 if requested is None else requested

    def columns(self) -> list[Column]:
        return [Column("Status"), Column("Node", priority=1)]

    def cells(self, obj: Obj) -> list[object]:
        return [(obj.get("status") or {}).get("phase", "Pending"),
                (obj.get("spec") or {}).get("nodeName", "<none>")]


class ServiceStrategy(_StatusSplit):
    def validate(self, obj: Obj) -> list[FieldError]:
        errs = super().validate(obj)
        for i, port in enumerate((obj.get("spec") or {}).get("ports") or []):
            p = port.get("port")
            if not isinstance(p, int) or not 1 <= p <= 65535:
                errs.append(FieldError(f"spec.ports[{i}].port", "FieldValueInvalid",
                                       f"Invalid value: {p}: must be between 1 and 65535, "
                                       "inclusive"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        a = (old.get("spec") or {}).get("clusterIP")
        b = (new.get("spec") or {}).get("clusterIP")
        if a and a != b:
            return [FieldError("spec.clusterIP", "FieldValueInvalid",
                               f'Invalid value: "{b}": field is immutable')]
        return []


class StatefulSetStrategy(_StatusSplit):
    subresources = ("status", "scale")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def default(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("replicas", 1)


class NamespaceStrategy(_StatusSplit):
    subresources = ("status", "finalize")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]


TYPES = [
    ResourceType("", "v1", "namespaces", "Namespace", "namespace", False, NamespaceStrategy(),
                 ("ns",)),
    ResourceType("", "v1", "pods", "Pod", "pod", True, PodStrategy(), ("po",), ("all",)),
    ResourceType("", "v1", "services", "Service", "service", True, ServiceStrategy(), ("svc",),
                 ("all",)),
    ResourceType("", "v1", "configmaps", "ConfigMap", "configmap", True, Strategy(), ("cm",)),
    ResourceType("", "v1", "nodes", "Node", "node", False, _StatusSplit(), ("no",)),
    ResourceType("apps", "v1", "statefulsets", "StatefulSet", "statefulset", True,
                 StatefulSetStrategy(), ("sts",), ("all",)),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", "lease", True, Strategy()),
]
