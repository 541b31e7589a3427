"""Secrets: `type` defaults to Opaque and is immutable, `stringData` is folded into base64
`data` (as the API server's conversion does), and the TYPE/DATA columns."""

from __future__ import annotations

import base64
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import immutable
from podns.api.resources.base import Column, FieldError, Obj
from podns.api.resources.configmap import immutable_data, validate_data_keys


class SecretStrategy(KindStrategy):
    schema_type = "core.v1.Secret"
    selectable_fields = ("type",)

    def set_defaults(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        return validate_data_keys(obj, ("data",))

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("type", new.get("type"), old.get("type")) + immutable_data(new, old, ("data",))

    def columns(self) -> list[Column]:
        return [
            Column("Type", description="The type of the secret"),
            Column("Data", type="integer", description="The number of entries in the secret"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [obj.get("type", ""), len(obj.get("data") or {})]
