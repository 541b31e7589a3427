"""Label and field selectors of list, watch and deletecollection requests.

Label selectors use the Kubernetes string syntax (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
`a notin (x)`, `a`, `!a`, comma = AND). Field selectors accept `=`, `==`, `!=` on
`metadata.name`, `metadata.namespace` and the kind's `Strategy.selectable_fields`; any other
field is a 400, as kube-apiserver answers. `selector_string` renders a `LabelSelector` object
(matchLabels + matchExpressions) back to that syntax for the Scale subresource's
`status.selector`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from podns.api import status
from podns.api.resources.base import Strategy

Obj = dict[str, Any]

_SET_RE = re.compile(r"^\s*(!?)\s*([^\s!=<>(),]+)\s*(?:(notin|in)\s*\(([^)]*)\)|(==|=|!=)\s*([^,]*?))?\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One label requirement: `op` is in, notin, exists, !exists, =, !=."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        # != and notin match objects without the label, as in Kubernetes
        return not has or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    terms, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    terms.append("".join(cur))
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a labelSelector query value; 400 BadRequest on bad syntax."""
    if not text or not text.strip():
        return []
    reqs: list[Requirement] = []
    for term in _split_terms(text):
        m = _SET_RE.match(term)
        if m is None:
            raise status.bad_request(f'unable to parse requirement: found \'{term.strip()}\', '
                                     f"expected: identifier")
        neg, key, set_op, set_vals, eq_op, eq_val = m.groups()
        if neg and (set_op or eq_op):
            raise status.bad_request(f"unable to parse requirement: '{term.strip()}'")
        if set_op:
            vals = tuple(v.strip() for v in set_vals.split(",") if v.strip())
            reqs.append(Requirement(key, set_op, vals))
        elif eq_op:
            reqs.append(Requirement(key, "!=" if eq_op == "!=" else "=", (eq_val.strip(),)))
        else:
            reqs.append(Requirement(key, "!exists" if neg else "exists"))
    return reqs


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: str
    negate: bool
    value: str


def parse_field_selector(text: str | None, strategy: Strategy, resource: str) -> list[FieldRequirement]:
    """Parse a fieldSelector; 400 for bad syntax or a field the kind does not index."""
    if not text or not text.strip():
        return []
    allowed = ("metadata.name", "metadata.namespace", *strategy.selectable_fields)
    out: list[FieldRequirement] = []
    for term in text.split(","):
        term = term.strip()
        if not term:
            continue
        for op in ("!=", "==", "="):
            if op in term:
                path, _, value = term.partition(op)
                break
        else:
            raise status.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        path = path.strip()
        if path not in allowed:
            raise status.bad_request(f'field label not supported: {path}')
        out.append(FieldRequirement(path, op == "!=", value.strip()))
    return out


def matcher(labels: list[Requirement], fields: list[FieldRequirement],
            strategy: Strategy) -> Callable[[Obj], bool] | None:
    """A predicate for objects selected by both selectors; None when everything matches."""
    if not labels and not fields:
        return None

    def match(obj: Obj) -> bool:
        meta = obj.get("metadata") or {}
        obj_labels = meta.get("labels") or {}
        for req in labels:
            if not req.matches(obj_labels):
                return False
        for f in fields:
            if f.path == "metadata.name":
                value = meta.get("name", "")
            elif f.path == "metadata.namespace":
                value = meta.get("namespace", "")
            else:
                value = strategy.field_value(obj, f.path) or ""
            if (value == f.value) == f.negate:
                return False
        return True

    return match


def selector_string(selector: Obj | None) -> str:
    """Render a LabelSelector object (`matchLabels`, `matchExpressions`) as a query string."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, vals = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(sorted(vals))})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(sorted(vals))})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)
