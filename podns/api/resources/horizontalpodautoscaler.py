"""HorizontalPodAutoscalers: autoscaling/v2 (stored, preferred) and autoscaling/v1 (converted).

The objects are served as kube-apiserver serves them, so manifests with an HPA apply and
`kubectl autoscale` (which creates an autoscaling/v1 HPA up to kubectl 1.33) works. podns has no
Metrics API: its controller (`podns.controllers.podautoscaler`) keeps each target within the
HPA's bounds and reports the metrics it cannot read, as Kubernetes does without metrics-server.

- Defaults (`SetDefaults_HorizontalPodAutoscaler`): `minReplicas: 1`; no metrics means one metric,
  CPU at 80% average utilization; a `behavior` given gets its missing rules defaulted
  (scale up: no stabilization, Max of 4 pods or 100% per 15 s; scale down: 300 s, 100% per 15 s).
- Validation (`ValidateHorizontalPodAutoscaler`, Kubernetes' messages and paths): scaleTargetRef
  kind and name, `minReplicas >= 1`, `maxReplicas >= 1` and `>= minReplicas`, metric types with
  their source, targets of the right type, behavior policies.
- Conversion to and from v1 (Kubernetes' `autoscaling/v1` conversion): the CPU utilization
  target is `targetCPUUtilizationPercentage`; every other metric, the behavior, the conditions and
  the current metrics travel in the annotations `autoscaling.alpha.kubernetes.io/metrics`,
  `.../behavior`, `.../conditions`, `.../current-metrics` (here as their autoscaling/v2 JSON).
- Columns: NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE, TARGETS as kube-apiserver 1.33
  prints them (`cpu: <unknown>/80%`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    as_object,
    dig,
    forbidden,
    invalid,
    not_supported,
    required,
    validate_label_selector,
)
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.quantity import parse_quantity

V1 = "autoscaling/v1"
V2 = "autoscaling/v2"
METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
TARGET_TYPES = ["AverageValue", "Utilization", "Value"]
POLICY_TYPES = ["Percent", "Pods"]
SELECT_POLICIES = ["Disabled", "Max", "Min"]
#: the v1 annotations carrying what v1 has no field for (Kubernetes' names)
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
_V1_ANNOTATIONS = (METRICS_ANNOTATION, BEHAVIOR_ANNOTATION, CONDITIONS_ANNOTATION,
                   CURRENT_METRICS_ANNOTATION)
DEFAULT_CPU_UTILIZATION = 80
#: `SetDefaults_HorizontalPodAutoscalerBehavior`: the rules filled into a given behavior
SCALE_UP_DEFAULT: Obj = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15},
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_DEFAULT: Obj = {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}
#: the source field of each metric type
_SOURCE = {"Resource": "resource", "ContainerResource": "containerResource", "Pods": "pods",
           "Object": "object", "External": "external"}


def cpu_metric(utilization: int) -> Obj:
    """The v2 metric a v1 `targetCPUUtilizationPercentage` is."""
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": utilization}}}


def _is_cpu_utilization(metric: Any) -> bool:
    return (isinstance(metric, dict) and metric.get("type") == "Resource"
            and dig(metric, "resource", "name") == "cpu"
            and dig(metric, "resource", "target", "type") == "Utilization")


class HorizontalPodAutoscalerStrategy(KindStrategy):
    """autoscaling/v2, the version objects are stored in."""

    schema_type = "autoscaling.v2.HorizontalPodAutoscaler"
    subresources = ("status",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"currentReplicas": 0, "desiredReplicas": 0}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            spec["metrics"] = [cpu_metric(DEFAULT_CPU_UTILIZATION)]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            for field, default in (("scaleUp", SCALE_UP_DEFAULT), ("scaleDown", SCALE_DOWN_DEFAULT)):
                rules = behavior.setdefault(field, {})
                if isinstance(rules, dict):
                    for key, value in default.items():
                        if rules.get(key) is None or rules.get(key) == []:
                            rules[key] = copy.deepcopy(value)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = _validate_target_ref("spec.scaleTargetRef", spec.get("scaleTargetRef"))
        low, high = spec.get("minReplicas"), spec.get("maxReplicas")
        if isinstance(low, int) and low < 1:
            errs.append(invalid("spec.minReplicas", low, "must be greater than or equal to 1"))
        if not isinstance(high, int) or high < 1:
            errs.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
        elif isinstance(low, int) and high < low:
            errs.append(invalid("spec.maxReplicas", high,
                                "must be greater than or equal to `minReplicas`"))
        for i, metric in enumerate(spec.get("metrics") or []):
            errs.extend(_validate_metric(f"spec.metrics[{i}]", metric))
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            for field in ("scaleUp", "scaleDown"):
                errs.extend(_validate_rules(f"spec.behavior.{field}", behavior.get(field)))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Reference", description="Reference to the object the HPA scales."),
            Column("Targets", description="The metrics the HPA targets, current/target."),
            Column("MinPods", description="Lower limit for the number of pods that can be set "
                   "by the autoscaler, default 1."),
            Column("MaxPods", type="integer", description="Upper limit for the number of pods "
                   "that can be set by the autoscaler; cannot be smaller than MinReplicas."),
            Column("Replicas", type="integer", description="Current number of replicas of pods "
                   "managed by this autoscaler."),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec = obj.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        low = spec.get("minReplicas")
        return [
            f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_metrics(spec.get("metrics") or [], dig(obj, "status", "currentMetrics") or []),
            "<unset>" if low is None else low,
            spec.get("maxReplicas", 0),
            dig(obj, "status", "currentReplicas", default=0),
        ]


class HorizontalPodAutoscalerV1Strategy(HorizontalPodAutoscalerStrategy):
    """autoscaling/v1: the same objects, converted from and to the stored v2 form."""

    schema_type = "autoscaling.v1.HorizontalPodAutoscaler"
    storage_api_version = V2

    def to_storage(self, obj: Obj) -> Obj:
        return v1_to_v2(obj)

    def from_storage(self, obj: Obj) -> Obj:
        return v2_to_v1(obj)


def _validate_target_ref(path: str, ref: Any) -> list[FieldError]:
    if not isinstance(ref, dict):
        return [required(f"{path}.kind"), required(f"{path}.name")]
    errs: list[FieldError] = []
    for field in ("kind", "name"):
        value = ref.get(field)
        if not value:
            errs.append(required(f"{path}.{field}"))
        elif "/" in str(value) or "%" in str(value) or value in (".", ".."):
            errs.append(invalid(f"{path}.{field}", value,
                                "may not contain '/'" if "/" in str(value) else "may not contain '%'"))
    return errs


def _validate_target(path: str, target: Any) -> list[FieldError]:
    """`validateMetricTarget`: a known type, positive values and utilization."""
    target = target if isinstance(target, dict) else {}
    kind = target.get("type")
    errs: list[FieldError] = []
    if not kind:
        errs.append(required(f"{path}.type", "must specify a metric target type"))
    if kind not in TARGET_TYPES:
        errs.append(invalid(f"{path}.type", kind or "",
                            "must be either Utilization, Value, or AverageValue"))
    for field in ("value", "averageValue"):
        value = target.get(field)
        if value is not None:
            try:
                positive = parse_quantity(value) > 0
            except (ValueError, TypeError):
                positive = False
            if not positive:
                errs.append(invalid(f"{path}.{field}", value, "must be positive"))
    utilization = target.get("averageUtilization")
    if isinstance(utilization, int) and utilization < 1:
        errs.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return errs


def _validate_source(kind: str, path: str, source: Obj) -> list[FieldError]:
    """One metric source (`validateResourceSource`, `validatePodsSource`, ...)."""
    errs: list[FieldError] = []
    target = as_object(source.get("target"))
    if kind in ("Resource", "ContainerResource"):
        if not source.get("name"):
            errs.append(required(f"{path}.name", "must specify a resource name"))
        if kind == "ContainerResource" and not source.get("container"):
            errs.append(required(f"{path}.container", "must specify a container"))
        errs.extend(_validate_target(f"{path}.target", target))
        if target.get("averageUtilization") is None and target.get("averageValue") is None:
            errs.append(required(f"{path}.target.averageUtilization",
                                 "must set either a target raw value or a target utilization"))
        elif target.get("averageUtilization") is not None and target.get("averageValue") is not None:
            errs.append(invalid(f"{path}.target.averageValue", target["averageValue"],
                                "may not set both a target raw value and a target utilization"))
        return errs
    if kind == "Object":
        errs.extend(_validate_target_ref(f"{path}.describedObject", source.get("describedObject")))
    if not dig(source, "metric", "name"):
        errs.append(required(f"{path}.metric.name", "must specify a metric name"))
    else:
        errs.extend(validate_label_selector(f"{path}.metric.selector",
                                            dig(source, "metric", "selector")))
    errs.extend(_validate_target(f"{path}.target", target))
    if kind == "Pods" and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.averageValue",
                             "must specify a positive target averageValue"))
    elif kind != "Pods" and target.get("value") is None and target.get("averageValue") is None:
        errs.append(required(f"{path}.target.value",
                             "must set either a target value or averageValue"))
    return errs


def _validate_metric(path: str, metric: Any) -> list[FieldError]:
    """`validateMetricSpec`: a known type whose source (and only that one) is given."""
    metric = metric if isinstance(metric, dict) else {}
    kind = metric.get("type")
    if not kind:
        return [required(f"{path}.type", "must specify a metric source type")]
    if kind not in METRIC_TYPES:
        return [not_supported(f"{path}.type", kind, METRIC_TYPES)]
    field = _SOURCE[kind]
    errs: list[FieldError] = []
    source = metric.get(field)
    if isinstance(source, dict):
        errs.extend(_validate_source(kind, f"{path}.{field}", source))
    else:
        errs.append(required(f"{path}.{field}", "must populate information for the given metric source"))
    for other in _SOURCE.values():
        if other != field and metric.get(other) is not None:
            errs.append(forbidden(f"{path}.{other}", "must populate the given metric source only"))
    return errs


def _validate_rules(path: str, rules: Any) -> list[FieldError]:
    if not isinstance(rules, dict):
        return []
    errs: list[FieldError] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int) and not 0 <= window <= 3600:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds", window,
                            "must be less than or equal to 3600" if window > 0
                            else "must be greater than or equal to zero"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        errs.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    for i, policy in enumerate(rules.get("policies") or []):
        ppath = f"{path}.policies[{i}]"
        if not isinstance(policy, dict):
            errs.append(required(ppath))
            continue
        if policy.get("type") not in POLICY_TYPES:
            errs.append(not_supported(f"{ppath}.type", policy.get("type"), POLICY_TYPES))
        value = policy.get("value")
        if not isinstance(value, int) or value <= 0:
            errs.append(invalid(f"{ppath}.value", value, "must be greater than zero"))
        period = policy.get("periodSeconds")
        if not isinstance(period, int) or period <= 0:
            errs.append(invalid(f"{ppath}.periodSeconds", period, "must be greater than zero"))
        elif period > 1800:
            errs.append(invalid(f"{ppath}.periodSeconds", period, "must be less than or equal to 1800"))
    return errs


# -- printing ------------------------------------------------------------------------------------


def _quantity(value: Any) -> str:
    return "<unknown>" if value in (None, "") else str(value)


def format_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """kube-apiserver 1.33's `formatHPAMetrics`: `current/target` per metric (at most two, then
    ` + N more...`), `<none>` without metrics."""
    if not specs:
        return "<none>"
    shown: list[str] = []
    for i, spec in enumerate(specs):
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type")
        status = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else {}
        field = _SOURCE.get(str(kind))
        source = spec.get(field) if field else None
        if not isinstance(source, dict):
            shown.append("<unknown type>")
            continue
        current_src = status.get(field) or {}
        target = source.get("target") or {}
        current = current_src.get("current") or {}
        if kind in ("Resource", "ContainerResource"):
            label = str(source.get("name", ""))
            if kind == "ContainerResource":
                label = f"{label} of container \"{source.get('container', '')}\""
            if target.get("averageValue") is not None:
                shown.append(f"{label}: {_quantity(current.get('averageValue'))}/{target['averageValue']}")
            else:
                now = current.get("averageUtilization")
                want = target.get("averageUtilization")
                shown.append(f"{label}: {'<unknown>' if now is None else f'{now}%'}/"
                             f"{'<auto>' if want is None else f'{want}%'}")
        elif kind in ("Pods", "Object", "External"):
            if target.get("averageValue") is not None:
                shown.append(f"{_quantity(current.get('averageValue'))}/{target['averageValue']} (avg)")
            else:
                shown.append(f"{_quantity(current.get('value'))}/{_quantity(target.get('value'))}")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


# -- conversion ----------------------------------------------------------------------------------


def _annotations(obj: Obj) -> dict[str, Any]:
    md = obj.setdefault("metadata", {})
    annotations = md.get("annotations")
    if not isinstance(annotations, dict):
        annotations = {}
    md["annotations"] = annotations
    return annotations


def _drop_empty_annotations(obj: Obj) -> None:
    md = obj.get("metadata") or {}
    if md.get("annotations") == {}:
        del md["annotations"]


def _load(annotations: dict[str, Any], key: str) -> Any:
    raw = annotations.pop(key, None)
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def v2_to_v1(obj: Obj) -> Obj:
    """A stored autoscaling/v2 HPA as autoscaling/v1 shows it."""
    out = copy.deepcopy(obj)
    out["apiVersion"] = V1
    spec = as_object(out.get("spec"))
    status = as_object(out.get("status"))
    annotations = _annotations(out)
    metrics = spec.pop("metrics", None) or []
    others = [m for m in metrics if not _is_cpu_utilization(m)]
    for m in metrics:
        if _is_cpu_utilization(m):
            spec["targetCPUUtilizationPercentage"] = dig(m, "resource", "target", "averageUtilization")
            break
    if others:
        annotations[METRICS_ANNOTATION] = json.dumps(others, separators=(",", ":"))
    behavior = spec.pop("behavior", None)
    if behavior:
        annotations[BEHAVIOR_ANNOTATION] = json.dumps(behavior, separators=(",", ":"))
    conditions = status.pop("conditions", None)
    if conditions:
        annotations[CONDITIONS_ANNOTATION] = json.dumps(conditions, separators=(",", ":"))
    current = status.pop("currentMetrics", None) or []
    for m in current:
        if (isinstance(m, dict) and m.get("type") == "Resource" and dig(m, "resource", "name") == "cpu"
                and dig(m, "resource", "current", "averageUtilization") is not None):
            status["currentCPUUtilizationPercentage"] = dig(m, "resource", "current",
                                                            "averageUtilization")
    if current:
        annotations[CURRENT_METRICS_ANNOTATION] = json.dumps(current, separators=(",", ":"))
    if "spec" in out:
        out["spec"] = spec
    if "status" in out:
        out["status"] = status
    _drop_empty_annotations(out)
    return out


def v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HPA (a request body) in the stored autoscaling/v2 form. The v1
    annotations become fields again and are dropped."""
    out = copy.deepcopy(obj)
    if out.get("apiVersion") in (None, "", V1):
        out["apiVersion"] = V2
    spec = out.get("spec")
    status = out.get("status") if isinstance(out.get("status"), dict) else None
    md = out.get("metadata")
    annotations = md.get("annotations") if isinstance(md, dict) else None
    annotations = annotations if isinstance(annotations, dict) else {}
    others = _load(annotations, METRICS_ANNOTATION)
    behavior = _load(annotations, BEHAVIOR_ANNOTATION)
    conditions = _load(annotations, CONDITIONS_ANNOTATION)
    current = _load(annotations, CURRENT_METRICS_ANNOTATION)
    if isinstance(md, dict) and md.get("annotations") == {}:
        del md["annotations"]
    if isinstance(spec, dict):
        metrics: list[Any] = []
        cpu = spec.pop("targetCPUUtilizationPercentage", None)
        if cpu is not None:
            metrics.append(cpu_metric(cpu))
        if isinstance(others, list):
            metrics.extend(others)
        if metrics:
            spec["metrics"] = metrics
        if isinstance(behavior, dict):
            spec["behavior"] = behavior
    if status is not None:
        cpu_now = status.pop("currentCPUUtilizationPercentage", None)
        if isinstance(current, list):
            status["currentMetrics"] = current
        elif cpu_now is not None:
            status["currentMetrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": cpu_now}}}]
        if isinstance(conditions, list):
            status["conditions"] = conditions
    return out


