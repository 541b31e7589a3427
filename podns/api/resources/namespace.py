"""Namespaces: DNS-1123 label names, `Active` on create, the `kubernetes` finalizer and the
`kubernetes.io/metadata.name` label Kubernetes sets on every namespace."""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import invalid
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import names
from podns.objects.wellknown import NAMESPACE_NAME_LABEL


class NamespaceStrategy(KindStrategy):
    schema_type = "core.v1.Namespace"
    namespaced = False
    subresources = ("status", "finalize")
    selectable_fields = ("status.phase",)
    name_validator = staticmethod(names.is_dns1123_label)

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Active"}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("finalizers", ["kubernetes"])
        md = obj.get("metadata") or {}
        if md.get("name"):
            md.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = md["name"]
        if isinstance(obj.get("status"), dict):
            obj["status"].setdefault("phase", "Active")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, fin in enumerate((obj.get("spec") or {}).get("finalizers") or []):
            if not isinstance(fin, str) or not fin:
                errs.append(invalid(f"spec.finalizers[{i}]", fin, "must be a qualified name"))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Status", description="The status of the namespace"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [(obj.get("status") or {}).get("phase", "")]
