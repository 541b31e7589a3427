"""ConfigMaps: key validation, `immutable`, and the DATA column."""

from __future__ import annotations

import re
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import forbidden, invalid
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.names import regex_error

CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(CONFIG_KEY_FMT)
_CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
#: Kubernetes' MaxSecretSize / configmap size: 1 MiB of data
MAX_DATA_SIZE = 1024 * 1024


def config_key_errors(key: str) -> list[str]:
    """Kubernetes' IsConfigMapKey."""
    errs = []
    if len(key) > 253:
        errs.append("must be no more than 253 characters")
    if not _CONFIG_KEY_RE.fullmatch(key):
        errs.append(regex_error(_CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    if key in (".", ".."):
        errs.append(f"must not be '{key}'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def validate_data_keys(obj: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    total = 0
    for field in fields:
        data = obj.get(field) or {}
        if not isinstance(data, dict):
            errs.append(invalid(field, data, "must be a map of strings"))
            continue
        for key, value in data.items():
            errs.extend(invalid(field, key, m) for m in config_key_errors(key))
            if key in seen:
                errs.append(invalid(field, key, "duplicate of key present in " + fields[0]))
            seen.add(key)
            total += len(value) if isinstance(value, str) else 0
    if total > MAX_DATA_SIZE:
        errs.append(FieldError("", "FieldValueTooLong", f"Too long: must have at most {MAX_DATA_SIZE} bytes"))
    return errs


def immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    """Once `immutable: true`, neither the data nor the flag may change."""
    if not old.get("immutable"):
        return []
    errs: list[FieldError] = []
    for field in fields:
        if (new.get(field) or {}) != (old.get(field) or {}):
            errs.append(forbidden(field, "field is immutable when `immutable` is set"))
    if not new.get("immutable"):
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    return errs


class ConfigMapStrategy(KindStrategy):
    schema_type = "core.v1.ConfigMap"

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        return validate_data_keys(obj, ("data", "binaryData"))

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable_data(new, old, ("data", "binaryData"))

    def columns(self) -> list[Column]:
        return [
            Column("Data", type="integer", description="Data contains the configuration data."),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {})]
