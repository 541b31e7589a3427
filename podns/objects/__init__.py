"""Pure helpers on Kubernetes objects, shared by every podns component (no I/O, no podns
imports): name validation with Kubernetes' messages (`names`), label and field selectors
(`selectors`), keys, owner references, conditions and timestamps (`meta`), resource
quantities (`quantity`), and JSON merge patch (`mergepatch`)."""

from podns.objects.meta import (
    controller_ref,
    get_condition,
    is_condition_true,
    is_controlled_by,
    make_controller_ref,
    object_key,
    set_condition,
    split_key,
)
from podns.objects.names import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
)
from podns.objects.quantity import parse_quantity
from podns.objects.selectors import (
    FieldSelector,
    Selector,
    SelectorError,
    field_path_value,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    selector_from_set,
)

__all__ = [
    "FieldSelector",
    "Selector",
    "SelectorError",
    "controller_ref",
    "field_path_value",
    "get_condition",
    "is_condition_true",
    "is_controlled_by",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_label_value",
    "is_qualified_name",
    "make_controller_ref",
    "object_key",
    "parse_field_selector",
    "parse_label_selector",
    "parse_quantity",
    "selector_from_label_selector",
    "selector_from_set",
    "set_condition",
    "split_key",
]
