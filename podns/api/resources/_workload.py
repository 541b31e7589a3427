"""What the workload kinds (Deployment, ReplicaSet, DaemonSet, Job, CronJob) share: selector and
pod-template validation with Kubernetes' messages (`ValidatePodTemplateSpecForReplicaSet`,
`ValidatePositiveIntOrPercent`, `IsNotMoreThan100Percent`), template defaulting, and the
Containers / Images / Selector printer cells.
"""

from __future__ import annotations

import re
from typing import Any

from podns.api.resources._podspec import default_pod_spec, validate_pod_spec
from podns.api.resources._validation import (
    dig,
    forbidden,
    invalid,
    not_supported,
    required,
    validate_label_selector,
    validate_labels,
    validate_non_negative,
)
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.selectors import SelectorError, selector_from_label_selector

_PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MESSAGE = ("a valid percent string must be a numeric string followed by an ending '%' "
                   "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")

CONTAINERS = Column("Containers", priority=1, description="Names of each container in the template.")
IMAGES = Column("Images", priority=1, description="Images referenced by each container in the template.")


def selector_column(description: str) -> Column:
    return Column("Selector", priority=1, description=description)


def default_template(template: Any) -> None:
    """The pod template's defaults: the PodSpec's, and `metadata.creationTimestamp: null` as Go
    writes a zero time."""
    if not isinstance(template, dict):
        return
    if isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])
    md = template.setdefault("metadata", {})
    if isinstance(md, dict):
        md.setdefault("creationTimestamp", None)


def default_strategy(spec: Obj, field: str, rolling_defaults: Obj) -> None:
    """`spec[field]` defaults to `{type: RollingUpdate, rollingUpdate: rolling_defaults}` (the
    rollingUpdate block only for RollingUpdate), as Deployment, DaemonSet and StatefulSet do."""
    strategy = spec.setdefault(field, {})
    if isinstance(strategy, dict):
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            if isinstance(rolling, dict):
                for key, value in rolling_defaults.items():
                    rolling.setdefault(key, value)


def validate_rolling(path: str, rolling: Obj) -> list[FieldError]:
    """`ValidateRollingUpdateDeployment` / `...DaemonSet`: maxUnavailable and maxSurge are
    non-negative ints or percents, not both 0, maxUnavailable at most 100%."""
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = validate_int_or_percent(f"{path}.maxUnavailable", unavailable)
    errs.extend(validate_int_or_percent(f"{path}.maxSurge", surge))
    if int_or_percent_value(unavailable) == 0 and int_or_percent_value(surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", unavailable, "may not be 0 when `maxSurge` is 0"))
    errs.extend(not_more_than_100_percent(f"{path}.maxUnavailable", unavailable))
    return errs


def validate_selector(path: str, selector: Any, kind: str) -> list[FieldError]:
    """Required, a valid LabelSelector, and not empty (`empty selector is invalid for <kind>`)."""
    if selector is None:
        return [required(path)]
    errs = validate_label_selector(path, selector)
    if isinstance(selector, dict) and not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(invalid(path, selector, f"empty selector is invalid for {kind}"))
    return errs


def validate_template(path: str, template: Any, selector: Any, *,
                      restart_policies: tuple[str, ...] = ("Always",),
                      deadline_kind: str | None = "ReplicaSet") -> list[FieldError]:
    """`ValidatePodTemplateSpecForReplicaSet`: the template's labels match the selector, a valid
    PodSpec, an allowed restartPolicy, no activeDeadlineSeconds (unless `deadline_kind` None)."""
    if not isinstance(template, dict):
        return [required(path)]
    labels = dig(template, "metadata", "labels", default={})
    errs = validate_labels(f"{path}.metadata.labels", labels)
    if isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions")):
        try:
            matches = selector_from_label_selector(selector).matches(labels)
        except SelectorError:
            matches = True  # reported by validate_selector
        if not matches:
            errs.append(invalid(f"{path}.metadata.labels", labels,
                                "`selector` does not match template `labels`"))
    errs.extend(validate_pod_spec(f"{path}.spec", template.get("spec")))
    restart = dig(template, "spec", "restartPolicy", default="Always")
    if restart not in restart_policies:
        errs.append(not_supported(f"{path}.spec.restartPolicy", restart, list(restart_policies)))
    if deadline_kind and dig(template, "spec", "activeDeadlineSeconds") is not None:
        errs.append(forbidden(f"{path}.spec.activeDeadlineSeconds",
                              f"activeDeadlineSeconds in {deadline_kind} is not Supported"))
    return errs


def validate_int_or_percent(path: str, value: Any) -> list[FieldError]:
    """`ValidatePositiveIntOrPercent`: a non-negative int or `N%`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [] if _PERCENT.match(value) else [invalid(path, value, PERCENT_MESSAGE)]
    return validate_non_negative(path, value)


def int_or_percent_value(value: Any) -> int:
    """The number in `3` or `"25%"` (0 for anything else), as `getIntOrPercentValue`."""
    if isinstance(value, str):
        return int(value[:-1]) if _PERCENT.match(value) else 0
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def not_more_than_100_percent(path: str, value: Any) -> list[FieldError]:
    if isinstance(value, str) and _PERCENT.match(value) and int(value[:-1]) > 100:
        return [invalid(path, value, "must not be greater than 100%")]
    return []


def containers_cells(obj: Obj, *template_path: str) -> list[str]:
    """The Containers and Images cells of a template at `template_path` (`spec`, `template`)."""
    containers = dig(obj, *template_path, "spec", "containers", default=[])
    return [",".join(str(c.get("name", "")) for c in containers),
            ",".join(str(c.get("image", "")) for c in containers)]


def selector_cell(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: query syntax, `<none>` when empty."""
    try:
        text = str(selector_from_label_selector(selector)) if selector else ""
    except SelectorError:
        return "<error>"
    return text or "<none>"
