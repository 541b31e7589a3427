"""Field errors worded as Kubernetes words them, and the validation every kind shares.

`invalid`, `required`, ... build `FieldError`s whose `message` is what Kubernetes puts in a
`Status`'s `details.causes[].message` (`Invalid value: 70000: must be between 1 and 65535,
inclusive`); `validate_object_meta` is Kubernetes' `ValidateObjectMeta` (name or generateName,
namespace, labels, annotations, owner references, finalizers). Kinds call these from their
Strategy; nothing here has state or does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from podns.api.resources.base import FieldError, Obj
from podns.objects import names

NameValidator = Callable[[str], list[str]]

#: Kubernetes' TotalAnnotationSizeLimitB: 256 KiB of annotation keys and values together
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
#: Kubernetes' `IsValidIP` message
BAD_IP_MESSAGE = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"


def format_value(value: Any) -> str:
    """A bad value as Go's field errors print it: strings quoted, numbers and booleans bare,
    null for None, anything else as JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)


def invalid(path: str, value: Any, detail: str) -> FieldError:
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {format_value(value)}: {detail}")


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", f"Forbidden: {detail}")


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {format_value(value)}")


def not_supported(path: str, value: Any, valid: list[str]) -> FieldError:
    options = ", ".join(json.dumps(v) for v in valid)
    return FieldError(
        path, "FieldValueNotSupported",
        f"Unsupported value: {format_value(value)}: supported values: {options}",
    )


def too_long(path: str, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {limit} bytes")


def immutable(path: str, new: Any, old: Any) -> list[FieldError]:
    """Kubernetes' `ValidateImmutableField`."""
    return [] if new == old else [invalid(path, new, "field is immutable")]


def validate_port(path: str, value: Any, *, required_: bool = True) -> list[FieldError]:
    """A port number 1-65535 (`0`/absent allowed when not required)."""
    if value is None or value == 0:
        return [required(path)] if required_ else []
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        return [invalid(path, value, "must be between 1 and 65535, inclusive")]
    return []


def validate_int_or_string_port(path: str, value: Any) -> list[FieldError]:
    """A named port (IANA service name) or a number 1-65535 (container targetPort, probes)."""
    if isinstance(value, str) and not value.isdigit():
        return [invalid(path, value, msg) for msg in names.is_valid_port_name(value)]
    if isinstance(value, str):
        value = int(value)
    return validate_port(path, value)


def validate_non_negative(path: str, value: Any) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def validate_labels(path: str, labels: Any) -> list[FieldError]:
    """Label keys are qualified names and values label values (Kubernetes' ValidateLabels)."""
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(path, labels, "must be a map of strings")]
    errs: list[FieldError] = []
    for key, value in labels.items():
        errs.extend(invalid(path, key, msg) for msg in names.is_qualified_name(key))
        if not isinstance(value, str):
            errs.append(invalid(f"{path}", value, "label values must be strings"))
        else:
            errs.extend(invalid(path, value, msg) for msg in names.is_label_value(value))
    return errs


def validate_annotations(path: str, annotations: Any) -> list[FieldError]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid(path, annotations, "must be a map of strings")]
    errs: list[FieldError] = []
    total = 0
    for key, value in annotations.items():
        errs.extend(invalid(path, key, msg) for msg in names.is_qualified_name(key.lower()))
        total += len(key) + len(value if isinstance(value, str) else str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(FieldError(
            path, "FieldValueTooLong", f"Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
        ))
    return errs


def validate_owner_references(path: str, refs: Any) -> list[FieldError]:
    if not refs:
        return []
    errs: list[FieldError] = []
    controllers = 0
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            errs.append(invalid(path, ref, "must be an object"))
            continue
        if not ref.get("apiVersion"):
            errs.append(invalid(f"{path}.apiVersion", "", "version must not be empty"))
        if not ref.get("kind"):
            errs.append(invalid(f"{path}.kind", "", "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{path}.name", "", "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{path}.uid", "", "uid must not be empty"))
        controllers += bool(ref.get("controller"))
    if controllers > 1:
        errs.append(invalid(path, refs, "Only one reference can have Controller set to true"))
    return errs


def validate_object_meta(obj: Obj, *, namespaced: bool, name_validator: NameValidator) -> list[FieldError]:
    """Kubernetes' ValidateObjectMeta: name (or generateName), namespace presence, labels,
    annotations, owner references and finalizers."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [required("metadata")]
    errs: list[FieldError] = []
    name, generate = md.get("name"), md.get("generateName")
    if generate:
        errs.extend(
            invalid("metadata.generateName", generate, msg)
            for msg in name_validator(names.mask_trailing_dash(str(generate)))
        )
    if not name:
        if not generate:
            errs.append(required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        errs.append(invalid("metadata.name", name, "must be a string"))
    else:
        errs.extend(invalid("metadata.name", name, msg) for msg in name_validator(name))
    ns = md.get("namespace")
    if namespaced:
        if not ns:
            errs.append(required("metadata.namespace"))
        else:
            errs.extend(invalid("metadata.namespace", ns, msg) for msg in names.is_dns1123_label(str(ns)))
    elif ns:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    errs.extend(validate_labels("metadata.labels", md.get("labels")))
    errs.extend(validate_annotations("metadata.annotations", md.get("annotations")))
    errs.extend(validate_owner_references("metadata.ownerReferences", md.get("ownerReferences")))
    for i, fin in enumerate(md.get("finalizers") or []):
        if not isinstance(fin, str):
            errs.append(invalid(f"metadata.finalizers[{i}]", fin, "must be a string"))
            continue
        errs.extend(invalid("metadata.finalizers", fin, msg) for msg in names.is_qualified_name(fin))
    return errs


def validate_object_meta_update(new: Obj, old: Obj) -> list[FieldError]:
    """Name, namespace, uid and creationTimestamp never change (ValidateObjectMetaUpdate)."""
    nmd, omd = new.get("metadata") or {}, old.get("metadata") or {}
    errs: list[FieldError] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if key in nmd and nmd.get(key) != omd.get(key):
            errs.extend(immutable(f"metadata.{key}", nmd.get(key), omd.get(key)))
    return errs


def validate_label_selector(path: str, selector: Any) -> list[FieldError]:
    """A LabelSelector object: matchLabels as labels; matchExpressions with a known operator,
    values required for In/NotIn and forbidden for Exists/DoesNotExist."""
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [invalid(path, selector, "must be an object")]
    errs = validate_labels(f"{path}.matchLabels", selector.get("matchLabels"))
    for i, expr in enumerate(selector.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator")
        values = expr.get("values") or []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(
                    f"{p}.values", "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                ))
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        key = str(expr.get("key", ""))
        errs.extend(invalid(f"{p}.key", key, m) for m in names.is_qualified_name(key))
        for j, value in enumerate(values):
            errs.extend(invalid(f"{p}.values[{j}]", value, m) for m in names.is_label_value(str(value)))
    return errs


def as_object(value: Any) -> Obj:
    """`value` when it is a JSON object, else an empty one (hooks read loosely shaped input)."""
    return value if isinstance(value, dict) else {}


def dig(obj: Any, *path: str | int, default: Any = None) -> Any:
    """`obj[path[0]][path[1]]...` or `default` when any step is missing or of the wrong type."""
    cur = obj
    for part in path:
        if isinstance(part, int):
            if not isinstance(cur, list) or part >= len(cur):
                return default
        elif not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return default if cur is None else cur
