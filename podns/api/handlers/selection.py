"""Label and field selectors of list, watch and deletecollection requests.

Parsing and matching are `podns.objects.selectors`' (Kubernetes syntax); this module maps
their errors to 400 BadRequest Statuses and restricts field selectors to the fields a kind
indexes: `metadata.name`, `metadata.namespace` and `Strategy.selectable_fields`, as
kube-apiserver answers `field label not supported: <f>` for any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podns.api import statuserror
from podns.api.resources.base import Strategy
from podns.objects import selectors

Obj = dict[str, Any]
Match = Callable[[Obj], bool]


def parse(label_selector: str | None, field_selector: str | None,
          strategy: Strategy) -> Match | None:
    """A predicate for the objects both selectors select; None when they select everything."""
    try:
        labels = selectors.parse_label_selector(label_selector or "")
        fields = selectors.parse_field_selector(field_selector or "")
    except selectors.SelectorError as exc:
        raise statuserror.bad_request(str(exc)) from None
    allowed = {"metadata.name", "metadata.namespace", *strategy.selectable_fields}
    for name in sorted(fields.fields()):
        if name not in allowed:
            raise statuserror.bad_request(f'field label not supported: {name}')
    if labels.empty() and not fields.requirements:
        return None

    def match(obj: Obj) -> bool:
        md = obj.get("metadata") or {}
        if not labels.matches(md.get("labels")):
            return False

        def get(path: str) -> str | None:
            if path == "metadata.name":
                return str(md.get("name", ""))
            if path == "metadata.namespace":
                return str(md.get("namespace", ""))
            return strategy.field_value(obj, path)

        return fields.matches(get)

    return match


def selector_string(selector: Obj | None) -> str:
    """A LabelSelector object as query syntax (`app=db`), for the Scale `status.selector`."""
    try:
        return str(selectors.selector_from_label_selector(selector))
    except selectors.SelectorError:
        return ""
