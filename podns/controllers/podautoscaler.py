"""The horizontal pod autoscaler controller, as kube-controller-manager's runs on a cluster without
a metrics API (`pkg/controller/podautoscaler/horizontal.go`, `reconcileAutoscaler`).

Every HorizontalPodAutoscaler is synced when it changes and every `SYNC_PERIOD` seconds (the
controller's `--horizontal-pod-autoscaler-sync-period`):

- the target's current replicas are read (`scaleTargetRef`: a Deployment, ReplicaSet, StatefulSet
  or ReplicationController); a target that cannot be read sets `AbleToScale=False`
  (`FailedGetScale`) and a Warning event;
- a target scaled to 0 is left alone (`ScalingActive=False`, `ScalingDisabled`);
- a target above `maxReplicas` or below `minReplicas` is rescaled to that bound through its
  `scale` subresource (`AbleToScale=True`, `SucceededRescale`; event `SuccessfulRescale` "New
  size: 3; reason: Current number of replicas below Spec.MinReplicas");
- otherwise the replica count would come from the metrics: podns serves no Metrics API
  (metrics.k8s.io), so, as Kubernetes without metrics-server, `ScalingActive` is False with
  `FailedGetResourceMetric` (`FailedGetPodsMetric`, `FailedGetObjectMetric`,
  `FailedGetExternalMetric`, `FailedGetContainerResourceMetric` by metric type), a Warning event
  says why, and the replica count is left as it is.

Status: `currentReplicas` (the target's), `desiredReplicas` (the bound it was rescaled to, else
unchanged), `lastScaleTime` on a rescale, `observedGeneration`, the conditions.

Pure part: `plan(hpa, current)`.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import (
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
    Resource,
)
from podns.objects import (
    Condition,
    Obj,
    meta_of,
    name_of,
    namespace_of,
    now_rfc3339,
    object_key,
    set_condition,
)

#: seconds between two syncs of one autoscaler (kube-controller-manager's default)
SYNC_PERIOD = 15.0
#: the kinds whose scale subresource podns serves, by (group, kind)
TARGETS: dict[tuple[str, str], Resource] = {
    ("apps", "Deployment"): DEPLOYMENTS,
    ("apps", "ReplicaSet"): REPLICASETS,
    ("apps", "StatefulSet"): STATEFULSETS,
    ("", "ReplicationController"): REPLICATIONCONTROLLERS,
}
NO_METRICS_API = ("the server could not find the requested resource (get pods.metrics.k8s.io)")
#: the reason Kubernetes gives per metric type when the metric cannot be read
FAILED_METRIC_REASON = {
    "Resource": "FailedGetResourceMetric", "ContainerResource": "FailedGetContainerResourceMetric",
    "Pods": "FailedGetPodsMetric", "Object": "FailedGetObjectMetric",
    "External": "FailedGetExternalMetric",
}


@dataclass(slots=True)
class Step:
    """What one sync does: the replicas to scale the target to (None: leave it), the
    conditions to set, and the events to record."""

    rescale: int | None
    desired: int
    conditions: list[Condition]
    events: list[tuple[str, str, str]]


def _cond(type_: str, status: str, reason: str, message: str) -> Condition:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def metric_error(metric: Mapping[str, Any]) -> tuple[str, str]:
    """(reason, message) of a metric podns cannot read (there is no metrics API)."""
    kind = str(metric.get("type", ""))
    source = metric.get({"Resource": "resource", "ContainerResource": "containerResource"}.get(
        kind, "")) or {}
    name = str(source.get("name", "")) if isinstance(source, dict) else ""
    if kind in ("Resource", "ContainerResource"):
        what = "utilization" if ((source.get("target") or {}).get("type") == "Utilization") else "usage"
        return (FAILED_METRIC_REASON[kind],
                f"failed to get {name} {what}: unable to get metrics for resource {name}: unable to "
                f"fetch metrics from resource metrics API: {NO_METRICS_API}")
    return (FAILED_METRIC_REASON.get(kind, "FailedGetResourceMetric"),
            "unable to get metric: unable to fetch metrics from custom metrics API: no custom "
            "metrics API (custom.metrics.k8s.io) registered")


def plan(hpa: Mapping[str, Any], current: int) -> Step:
    """One sync of `hpa` whose target runs `current` replicas (Kubernetes' order: disabled at 0,
    then the max bound, then the min bound, then the metrics)."""
    spec = hpa.get("spec") or {}
    low = int(spec.get("minReplicas") or 1)
    high = int(spec.get("maxReplicas") or 0)
    previous = int((hpa.get("status") or {}).get("desiredReplicas") or 0)
    able = _cond("AbleToScale", "True", "SucceededGetScale",
                 "the HPA controller was able to get the target's current scale")
    if current == 0 and low != 0:
        return Step(None, 0, [able, _cond("ScalingActive", "False", "ScalingDisabled",
                                           "scaling is disabled since the replica count of the "
                                           "target is zero")], [])
    bound, reason = None, ""
    if current > high:
        bound, reason = high, "Current number of replicas above Spec.MaxReplicas"
    elif current < low:
        bound, reason = low, "Current number of replicas below Spec.MinReplicas"
    if bound is not None:
        rescaled = _cond("AbleToScale", "True", "SucceededRescale",
                         f"the HPA controller was able to update the target scale to {bound}")
        return Step(bound, bound, [rescaled],
                    [(NORMAL, "SuccessfulRescale", f"New size: {bound}; reason: {reason}")])
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    errors_ = [metric_error(m) for m in metrics]
    events = [(WARNING, reason_, message) for reason_, message in errors_]
    conditions = [able]
    if errors_:
        reason_, message = errors_[0]
        conditions.append(_cond("ScalingActive", "False", reason_,
                                f"the HPA was unable to compute the replica count: {message}"))
        first = errors_[0][1]
        events.append((WARNING, "FailedComputeMetricsReplicas",
                       f"invalid metrics ({len(errors_)} invalid out of {len(metrics)}), first error "
                       f"is: failed to get {first}"))
    return Step(None, previous, conditions, events)


class HorizontalPodAutoscalerController(workerloop.Controller):
    """Keeps each HPA's target within its bounds and its status current (no metrics API)."""

    name = "horizontal-pod-autoscaler"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.autoscalers = informers.get(HORIZONTALPODAUTOSCALERS)
        self.autoscalers.add_handler(on_add=self._on_hpa, on_update=lambda _o, n: self._on_hpa(n))

    def _on_hpa(self, hpa: Obj) -> None:
        self.enqueue(object_key(hpa))

    async def sync(self, key: Hashable) -> None:
        hpa = self.autoscalers.get(str(key))
        if hpa is None or meta_of(hpa).get("deletionTimestamp"):
            return
        self.queue.add_after(key, SYNC_PERIOD)
        hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", **hpa}
        ref = (hpa.get("spec") or {}).get("scaleTargetRef") or {}
        group = str(ref.get("apiVersion") or "").rpartition("/")[0]
        target = TARGETS.get((group, str(ref.get("kind") or "")))
        ns = namespace_of(hpa)
        try:
            if target is None:
                raise LookupError(f'no matches for kind "{ref.get("kind")}" in group "{group}"')
            workload = await self.client.get(target, str(ref.get("name") or ""), ns)
        except (LookupError, errors.NotFound) as exc:
            message = f"the HPA controller was unable to get the target's current scale: {exc}"
            self._event(hpa, WARNING, "FailedGetScale", str(exc))
            await self._write_status(hpa, None, None, [_cond("AbleToScale", "False", "FailedGetScale",
                                                             message)])
            return
        current = int((workload.get("spec") or {}).get("replicas") or 0)
        step = plan(hpa, current)
        if step.rescale is not None:
            await self.client.patch(target, name_of(workload), {"spec": {"replicas": step.rescale}}, ns,
                                    subresource="scale")
        for type_, reason, message in step.events:
            self._event(hpa, type_, reason, message)
        await self._write_status(hpa, current, step.desired, step.conditions,
                                 rescaled=step.rescale is not None)

    def _event(self, hpa: Obj, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(hpa, type_, reason, message)

    async def _write_status(self, hpa: Obj, current: int | None, desired: int | None,
                            conditions: list[Condition], *, rescaled: bool = False) -> None:
        old = hpa.get("status") or {}
        status = copy.deepcopy(old)
        if current is not None:
            status["currentReplicas"] = current
        if desired is not None:
            status["desiredReplicas"] = desired
        status.setdefault("desiredReplicas", 0)
        if rescaled:
            status["lastScaleTime"] = now_rfc3339()
        status["observedGeneration"] = meta_of(hpa).get("generation", 1)
        merged: list[Condition] = list(status.get("conditions") or [])
        for cond in conditions:
            set_condition(merged, cond)
        status["conditions"] = merged
        if status == old:
            return
        try:
            await self.client.update_status(HORIZONTALPODAUTOSCALERS, {**hpa, "status": status})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of {name_of(hpa)}") from None


__all__ = ["HorizontalPodAutoscalerController", "plan"]
