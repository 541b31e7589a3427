"""Label and field selectors: parsing the query-string syntax and LabelSelector objects into
matchers.

Label selectors follow `k8s.io/apimachinery/pkg/labels`: comma-separated requirements
`k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, and `k>1`/`k<1` (numeric,
used for nodes). A `LabelSelector` object (`matchLabels` + `matchExpressions` with In, NotIn,
Exists, DoesNotExist) compiles to the same `Selector`. Field selectors follow
`k8s.io/apimachinery/pkg/fields`: `a=b,c!=d` with `\\`, `\\,` and `\\=` escapes in values.

Malformed input raises `SelectorError` (a ValueError) whose message is fit for a 400
BadRequest Status. Pure: no I/O, imports nothing of podns but `podns.objects`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from podns.objects.names import is_label_value, is_qualified_name


class SelectorError(ValueError):
    """A selector string or LabelSelector object that cannot be parsed or is invalid."""


# ---------------------------------------------------------------------------------------------
# label selectors

#: operators of a label requirement, as Kubernetes' selection.Operator values
EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "=", "==", "!="
IN, NOT_IN, EXISTS, DOES_NOT_EXIST = "in", "notin", "exists", "!"
GREATER_THAN, LESS_THAN = "gt", "lt"

_TOKEN_RE = re.compile(r"\s*(?:(==|!=|=|\(|\)|,|!|>|<)|([^\s=!(),<>]+))")


@dataclass(frozen=True, slots=True)
class Requirement:
    """One condition on one label key; `values` is sorted for set operators."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement (Kubernetes' `Requirement.Matches`)."""
        present = self.key in labels
        if self.op in (EQUALS, DOUBLE_EQUALS, IN):
            return present and labels[self.key] in self.values
        if self.op in (NOT_EQUALS, NOT_IN):
            return not present or labels[self.key] not in self.values
        if self.op == EXISTS:
            return present
        if self.op == DOES_NOT_EXIST:
            return not present
        if not present:
            return False
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except ValueError:
            return False
        return have > want if self.op == GREATER_THAN else have < want

    def __str__(self) -> str:
        if self.op == EXISTS:
            return self.key
        if self.op == DOES_NOT_EXIST:
            return "!" + self.key
        if self.op in (IN, NOT_IN):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        symbol = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", GREATER_THAN: ">", LESS_THAN: "<"}
        return f"{self.key}{symbol[self.op]}{self.values[0]}"


@dataclass(frozen=True, slots=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything. `nothing` is the
    selector that matches no object (a nil LabelSelector in Kubernetes)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        got = labels or {}
        return all(r.matches(got) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        """Kubernetes' canonical form: requirements sorted by key, joined with ','."""
        return ",".join(str(r) for r in self.requirements)


def _validate_requirement(req: Requirement) -> None:
    errs = is_qualified_name(req.key)
    if errs:
        raise SelectorError(f"unable to parse requirement: key: Invalid value: \"{req.key}\": {errs[0]}")
    if req.op in (GREATER_THAN, LESS_THAN):
        if len(req.values) != 1 or not re.fullmatch(r"-?\d+", req.values[0]):
            raise SelectorError(
                "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
            )
        return
    if req.op in (IN, NOT_IN) and not req.values:
        raise SelectorError(
            "unable to parse requirement: values: Invalid value: []: for 'in', 'notin' operators, "
            "values set can't be empty"
        )
    for i, value in enumerate(req.values):
        verrs = is_label_value(value)
        if verrs:
            raise SelectorError(
                f"unable to parse requirement: values[{i}][{req.key}]: Invalid value: \"{value}\": {verrs[0]}"
            )


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"unable to parse selector {text!r} at position {pos}")
        out.append(m.group(1) or m.group(2))
        pos = m.end()
    return out


def parse_label_selector(text: str) -> Selector:
    """Parse `labelSelector` syntax into a Selector (raises SelectorError)."""
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def expect_value(j: int) -> str:
        if j >= len(toks) or toks[j] in ("(", ")", ",", "=", "==", "!=", "!", ">", "<"):
            found = toks[j] if j < len(toks) else "EOS"
            raise SelectorError(f"found '{found}', expected: identifier")
        return toks[j]

    while i < len(toks):
        negate = toks[i] == "!"
        if negate:
            i += 1
        if i >= len(toks) or toks[i] in ("(", ")", ",", "=", "==", "!=", "!", ">", "<", "in", "notin"):
            found = toks[i] if i < len(toks) else "EOS"
            raise SelectorError(f"found '{found}', expected: !, identifier, or 'end of string'")
        key = toks[i]
        i += 1
        nxt = toks[i] if i < len(toks) else ","
        if negate:
            if nxt != ",":
                raise SelectorError(f"found '{nxt}', expected: ',' or 'end of string'")
            req = Requirement(key, DOES_NOT_EXIST)
        elif nxt == ",":
            req = Requirement(key, EXISTS)
        elif nxt in ("=", "==", "!=", ">", "<"):
            value = toks[i + 1] if i + 1 < len(toks) and toks[i + 1] not in (",",) else ""
            if value in ("(", ")", "=", "==", "!=", "!", ">", "<"):
                raise SelectorError(f"found '{value}', expected: identifier")
            i += 2 if value else 1
            op = {"=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS, ">": GREATER_THAN, "<": LESS_THAN}[nxt]
            req = Requirement(key, op, (value,))
        elif nxt in ("in", "notin"):
            i += 1
            if i >= len(toks) or toks[i] != "(":
                found = toks[i] if i < len(toks) else "EOS"
                raise SelectorError(f"found '{found}', expected: '('")
            i += 1
            values: set[str] = set()
            expect_item = True
            while True:
                if i >= len(toks):
                    raise SelectorError("found 'EOS', expected: ')'")
                tok = toks[i]
                if tok == ")":
                    if expect_item and values:
                        values.add("")  # a trailing comma means an empty value, as in Kubernetes
                    i += 1
                    break
                if tok == ",":
                    if expect_item:
                        values.add("")
                    expect_item = True
                    i += 1
                    continue
                if not expect_item:
                    raise SelectorError(f"found '{tok}', expected: ',' or ')'")
                values.add(expect_value(i))
                expect_item = False
                i += 1
            req = Requirement(key, IN if nxt == "in" else NOT_IN, tuple(sorted(values)))
        else:
            raise SelectorError(
                f"found '{nxt}', expected: in, notin, =, ==, !=, gt, lt"
            )
        _validate_requirement(req)
        reqs.append(req)
        if i < len(toks):
            if toks[i] != ",":
                raise SelectorError(f"found '{toks[i]}', expected: ',' or 'end of string'")
            i += 1
            if i >= len(toks):
                raise SelectorError("found 'EOS', expected: !, identifier, or 'end of string'")
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def selector_from_label_selector(obj: Mapping[str, Any] | None) -> Selector:
    """Compile a LabelSelector object. None selects nothing; `{}` selects everything (as
    Kubernetes' `LabelSelectorAsSelector`)."""
    if obj is None:
        return Selector(nothing=True)
    reqs: list[Requirement] = []
    for key, value in sorted((obj.get("matchLabels") or {}).items()):
        reqs.append(Requirement(key, EQUALS, (str(value),)))
    ops = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}
    for expr in obj.get("matchExpressions") or []:
        operator = expr.get("operator")
        if operator not in ops:
            raise SelectorError(f'"{operator}" is not a valid label selector operator')
        values = tuple(sorted(set(expr.get("values") or [])))
        if operator in ("Exists", "DoesNotExist") and values:
            raise SelectorError("values: Invalid value: must be empty for Exists and DoesNotExist")
        reqs.append(Requirement(str(expr.get("key", "")), ops[operator], values))
    for req in reqs:
        _validate_requirement(req)
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def validate_label_selector(selector: Mapping[str, Any] | None) -> None:
    """Raise `SelectorError` when a LabelSelector object cannot be compiled."""
    selector_from_label_selector(selector)


def match_label_selector(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a LabelSelector object (None matches nothing, `{}` everything);
    raises `SelectorError` when it is invalid. Compiles on each call: a caller matching many
    objects compiles once with `selector_from_label_selector`."""
    return selector_from_label_selector(selector).matches(labels)


def match_labels(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether `labels` satisfy an equality map (a Service's `spec.selector`, a pod's
    `nodeSelector`): every key present with that value. The fast path of
    `selector_from_set(selector).matches(labels)` for hot event handlers."""
    return all(labels.get(k) == v for k, v in selector.items())


def selector_from_set(labels: Mapping[str, str]) -> Selector:
    """The selector `k1=v1,k2=v2` for a plain map (a Service's `spec.selector`). An empty map
    selects everything; callers decide whether an empty service selector means 'no pods'."""
    return Selector(tuple(Requirement(k, EQUALS, (v,)) for k, v in sorted(labels.items())))


# ---------------------------------------------------------------------------------------------
# field selectors


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """One `field=value` or `field!=value` term (`==` is normalised to `=`)."""

    field: str
    op: str  # "=" or "!="
    value: str


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A conjunction of field terms; matches through a getter returning a field's string value."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, get: Callable[[str], str | None]) -> bool:
        for req in self.requirements:
            have = get(req.field)
            if (have == req.value) != (req.op == "="):
                return False
        return True

    def fields(self) -> set[str]:
        return {r.field for r in self.requirements}


def field_path_value(obj: Mapping[str, Any], path: str) -> str | None:
    """The string a field selector compares for the dotted `path` of `obj` (e.g.
    `metadata.name`, `spec.nodeName`): "" when the last field is absent or null, booleans as
    "true"/"false", None when a parent on the path is missing or not an object."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def escape_field_value(value: str) -> str:
    """Escape `\\`, `,` and `=` so the value survives `parse_field_selector`."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence in {value!r}")
            out.append(value[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped {ch!r} in value {value!r}")
        out.append(ch)
        i += 1
    return "".join(out)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if text[i] == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


def parse_field_selector(text: str) -> FieldSelector:
    """Parse `fieldSelector` syntax (raises SelectorError)."""
    if not text.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        if not term:
            continue
        pos, op = -1, ""
        i = 0
        while i < len(term):
            if term[i] == "\\":
                i += 2
                continue
            for candidate in ("!=", "==", "="):
                if term.startswith(candidate, i):
                    pos, op = i, candidate
                    break
            if pos >= 0:
                break
            i += 1
        if pos < 0:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field = term[:pos].strip()
        if not field:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        value = unescape_field_value(term[pos + len(op) :])
        reqs.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))
