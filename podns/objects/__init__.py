"""The one apimachinery leaf every podns component uses (pure: no I/O, no podns imports).

Keys, accessors, owner references and conditions (`meta`), timestamps (`times`), pod
readiness (`pods`), well-known labels and annotations (`wellknown`), name validation with
Kubernetes' messages (`names`), label and field selectors (`selectors`), resource quantities
(`quantity`), volume paths (`paths`), the `meta/v1 Status` (`apistatus`), EndpointSlice
endpoints (`endpointslices`), JSON merge patch (`mergepatch`) and JSON patch (`jsonpatch`).
See README.md for the module table.
"""

from podns.objects.meta import (
    Condition,
    Obj,
    OwnerReference,
    controller_ref,
    get_condition,
    is_condition_true,
    is_controlled_by,
    is_terminating,
    join_key,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    owner_reference,
    set_condition,
    set_owner_reference,
    split_key,
)
from podns.objects.names import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
)
from podns.objects.pods import phase_of, pod_is_available, pod_is_ready, ready_since
from podns.objects.quantity import parse_quantity
from podns.objects.selectors import (
    FieldSelector,
    Selector,
    SelectorError,
    field_path_value,
    match_label_selector,
    match_labels,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector,
    selector_from_set,
    validate_label_selector,
)
from podns.objects.times import now_rfc3339, now_rfc3339_micro, now_rfc3339_nano, parse_time

__all__ = [
    "Condition",
    "FieldSelector",
    "Obj",
    "OwnerReference",
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
    "is_terminating",
    "join_key",
    "labels_of",
    "match_label_selector",
    "match_labels",
    "meta_of",
    "name_of",
    "namespace_of",
    "now_rfc3339",
    "now_rfc3339_micro",
    "now_rfc3339_nano",
    "object_key",
    "owner_reference",
    "parse_field_selector",
    "parse_label_selector",
    "parse_quantity",
    "parse_time",
    "phase_of",
    "pod_is_available",
    "pod_is_ready",
    "ready_since",
    "selector_from_label_selector",
    "selector_from_set",
    "set_condition",
    "set_owner_reference",
    "split_key",
    "validate_label_selector",
]
