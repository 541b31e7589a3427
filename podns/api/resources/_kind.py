"""`KindStrategy`: the Strategy shape every served kind shares.

It wires what Kubernetes' generic registry does for every kind (ObjectMeta validation with
the kind's name rule, immutable name/namespace/uid, status kept apart from spec when the kind
has a `status` subresource, unknown-field detection from `schema`) so that each kind module
only states its own rules in `validate_spec`, `validate_spec_update`, `default`, `columns`
and `cells`.
"""

from __future__ import annotations

import copy

from podns.api.resources import schema
from podns.api.resources._validation import (
    NameValidator,
    format_value,
    validate_object_meta,
    validate_object_meta_update,
)
from podns.api.resources.base import FieldError, Obj, Strategy
from podns.objects import names


class KindStrategy(Strategy):
    """Generic per-kind behaviour; subclasses set the class attributes and override hooks."""

    #: the schema table type of the kind (`core.v1.Pod`), for Strict field validation
    schema_type: str = ""
    namespaced: bool = True
    #: Kubernetes' name rule for the kind (most kinds: DNS-1123 subdomain)
    name_validator: NameValidator = staticmethod(names.is_dns1123_subdomain)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    # -- lifecycle -----------------------------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        if self.has_status:
            obj["status"] = self.initial_status(obj)

    def initial_status(self, obj: Obj) -> Obj:
        """The status a new object starts with (clients may not set status on create)."""
        return {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.has_status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """Only `status` (and labels/annotations, resourceVersion) comes from the request."""
        for key in list(new):
            if key not in ("status", "metadata", "kind", "apiVersion"):
                del new[key]
        for key, value in old.items():
            if key not in ("status", "metadata", "kind", "apiVersion"):
                new[key] = copy.deepcopy(value)
        nmd = new.get("metadata") or {}
        md = copy.deepcopy(old.get("metadata") or {})
        for key in ("labels", "annotations", "resourceVersion"):
            if key in nmd:
                md[key] = nmd[key]
            else:
                md.pop(key, None)
        new["metadata"] = md

    # -- defaulting ----------------------------------------------------------------------------

    def default(self, obj: Obj) -> None:
        """The kind's defaults, then the zero value of every field Kubernetes always serializes
        (so strict clients such as the Python client can decode every stored object). An object
        with values of the wrong JSON type is left alone: `validate` refuses it."""
        if self.shape_errors(obj):
            return
        if self.schema_type:
            schema.strip_nulls(self.schema_type, obj)
        self.set_defaults(obj)
        if self.schema_type:
            schema.fill_required(self.schema_type, obj)

    def shape_errors(self, obj: Obj) -> list[FieldError]:
        """Values of the wrong JSON type (a string where Kubernetes has an int32, a list where it
        has an object), which Kubernetes' decoder would refuse before any kind code runs."""
        if not self.schema_type:
            return []
        return [
            FieldError(path, "FieldValueTypeInvalid",
                       f"Invalid value: {format_value(value)}: expected {expected}, "
                       f"got {schema.json_type_name(value)}")
            for path, value, expected in schema.type_errors(self.schema_type, obj)
        ]

    def set_defaults(self, obj: Obj) -> None:
        """The kind's own defaults (Kubernetes' SetDefaults_<Kind>)."""

    # -- validation ----------------------------------------------------------------------------

    def validate(self, obj: Obj) -> list[FieldError]:
        shape = self.shape_errors(obj)
        if shape:
            return shape  # the kind's rules assume well-typed values
        errs = validate_object_meta(obj, namespaced=self.namespaced, name_validator=self.name_validator)
        return errs + self.validate_spec(obj)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        """The kind's own rules on the whole object (create and update)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if self.shape_errors(new):
            return []  # reported by `validate`
        return validate_object_meta_update(new, old) + self.validate_spec_update(new, old)

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """The kind's rules comparing with the stored object (immutable fields)."""
        return []

    def unknown_fields(self, obj: Obj) -> list[str]:
        if not self.schema_type:
            return []
        return schema.unknown_fields(self.schema_type, obj)
