"""apps/v1 ControllerRevisions (the StatefulSet controller's history): `revision` required
and non-negative, `data` immutable; CONTROLLER/REVISION columns."""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import immutable, invalid, required
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.meta import controller_ref


class ControllerRevisionStrategy(KindStrategy):
    schema_type = "apps.v1.ControllerRevision"

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        revision = obj.get("revision")
        if revision is None:
            return [required("revision")]
        if not isinstance(revision, int) or isinstance(revision, bool) or revision < 0:
            return [invalid("revision", revision, "must be greater than or equal to 0")]
        return []

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("data", new.get("data"), old.get("data"))

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("revision") != old.get("revision")

    def columns(self) -> list[Column]:
        return [
            Column("Controller", description="Controller of the object"),
            Column("Revision", type="integer",
                description=(
                    "Revision indicates the revision of the state represented by Data."
                )),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        ref = controller_ref(obj)
        controller = "<none>"
        if ref:
            api_version = str(ref.get("apiVersion", ""))
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = str(ref.get("kind", "")).lower()
            controller = f"{kind}.{group}/{ref.get('name', '')}" if group else f"{kind}/{ref.get('name', '')}"
        return [controller, obj.get("revision", 0)]
