"""Core v1 Events: stored as reported; always an `involvedObject` (the Python client requires
one); `kubectl get events` columns (LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, wide SUBOBJECT,
SOURCE, FIRST SEEN, COUNT, NAME: the Name column is not first for events); the field
selectors `kubectl describe` uses (`involvedObject.kind,uid,name,namespace`)."""

from __future__ import annotations

from typing import Any

from podns.api.resources import _printing as pr
from podns.api.resources._kind import KindStrategy
from podns.api.resources._validation import dig, not_supported
from podns.api.resources.base import Column, FieldError, Obj

EVENT_TYPES = ["Normal", "Warning"]


class EventStrategy(KindStrategy):
    schema_type = "core.v1.Event"
    name_column = False
    allow_create_on_update = True  # kube-apiserver: a PUT may create an Event
    selectable_fields = (
        "involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    )

    def set_defaults(self, obj: Obj) -> None:
        if not isinstance(obj.get("involvedObject"), dict):
            obj["involvedObject"] = {}
        src = obj.get("source")
        if not isinstance(src, dict):
            obj["source"] = {}
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        etype = obj.get("type")
        if etype and etype not in EVENT_TYPES:
            return [not_supported("type", etype, EVENT_TYPES)]
        return []

    def field_value(self, obj: Obj, path: str) -> str | None:
        if path == "source":
            return str(dig(obj, "source", "component", default="") or obj.get("reportingComponent") or "")
        return super().field_value(obj, path)

    def columns(self) -> list[Column]:
        return [
            Column("Last Seen",
                description=(
                    "The time at which the most recent occurrence of this event was recorded."
                )),
            Column("Type",
                description=(
                    "Type of this event (Normal, Warning), new types could be added in the future."
                )),
            Column("Reason",
                description=(
                    "This should be a short, machine understandable string that gives the reason for "
                    "the transition into the object's current status."
                )),
            Column("Object", description="The object that this event is about."),
            Column("Subobject", priority=1, description="The field of the object that this event is about."),
            Column("Source", priority=1,
                description=(
                    "The component reporting this event. Should be a short machine understandable "
                    "string."
                )),
            Column("Message", description="A human-readable description of the status of this operation."),
            Column("First Seen", priority=1,
                description=(
                    "The time at which the event was first recorded. (Time of server receipt is in "
                    "TypeMeta.)"
                )),
            Column("Count", type="integer", priority=1,
                description=(
                    "The number of times this event has occurred."
                )),
            Column("Name", priority=1, description="Name must be unique within a namespace."),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        first = pr.since(obj.get("firstTimestamp") or obj.get("eventTime"))
        last = pr.since(obj.get("lastTimestamp")) if obj.get("lastTimestamp") else first
        count = obj.get("count") or 0
        series = obj.get("series")
        if isinstance(series, dict):
            last = pr.since(series.get("lastObservedTime"))
            count = series.get("count") or 0
        elif count == 0:
            count = 1  # singleton events have no count in the new API
        inv = obj.get("involvedObject") or {}
        kind = str(inv.get("kind", "")).lower()
        target = f"{kind}/{inv['name']}" if inv.get("name") else kind
        component = (dig(obj, "source", "component", default="") or obj.get("reportingController")
                     or obj.get("reportingComponent") or "")
        host = dig(obj, "source", "host", default="") or obj.get("reportingInstance") or ""
        source = f"{component}, {host}" if host else component
        return [
            last, obj.get("type", ""), obj.get("reason", ""), target, inv.get("fieldPath", ""),
            source, str(obj.get("message", "")).strip(), first, int(count),
            (obj.get("metadata") or {}).get("name", ""),
        ]
