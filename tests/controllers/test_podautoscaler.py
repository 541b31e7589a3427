"""The horizontal pod autoscaler controller without a metrics API: bounds enforced through the
target's scale, Kubernetes' conditions and events, the pure `plan`."""

from __future__ import annotations

from typing import Any

import pytest

from podns.controllers.podautoscaler import HorizontalPodAutoscalerController, plan
from podns.kube.events import EventRecorder
from podns.kube.resources import DEPLOYMENTS, EVENTS, HORIZONTALPODAUTOSCALERS
from podns.kube.testing import FakeClient

from ._harness import eventually, running

pytestmark = pytest.mark.timeout(30)


def hpa(min_replicas: int = 2, max_replicas: int = 5, **status: Any) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": min_replicas, "maxReplicas": max_replicas,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 80}}}]},
            "status": {"currentReplicas": 0, "desiredReplicas": 0, **status}}


def test_plan_orders_bounds_before_metrics() -> None:
    """Given current replicas below, above and within the bounds, and 0, then the HPA rescales to
    the bound with Kubernetes' reasons, leaves a target at 0 alone (ScalingDisabled), and within
    the bounds reports the metrics it cannot read (no metrics API)."""
    low = plan(hpa(), 1)
    assert low.rescale == 2 and low.desired == 2
    assert low.events == [("Normal", "SuccessfulRescale",
                           "New size: 2; reason: Current number of replicas below Spec.MinReplicas")]
    assert plan(hpa(), 9).rescale == 5
    assert "above Spec.MaxReplicas" in plan(hpa(), 9).events[0][2]
    off = plan(hpa(), 0)
    assert off.rescale is None and off.conditions[1]["reason"] == "ScalingDisabled"
    within = plan(hpa(desiredReplicas=3), 3)
    assert within.rescale is None and within.desired == 3
    active = within.conditions[1]
    assert (active["type"], active["status"], active["reason"]) == (
        "ScalingActive", "False", "FailedGetResourceMetric")
    assert "unable to fetch metrics from resource metrics API" in active["message"]
    assert [e[1] for e in within.events] == ["FailedGetResourceMetric", "FailedComputeMetricsReplicas"]


async def test_controller_scales_to_min_and_writes_status() -> None:
    """Given a Deployment of 1 and an HPA with minReplicas 2, then the Deployment is scaled to 2
    through its scale subresource, the HPA's status shows desired 2 and when it scaled, and a
    SuccessfulRescale event is recorded."""
    fake = FakeClient()
    fake.seed(DEPLOYMENTS, {"metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}})
    fake.seed(HORIZONTALPODAUTOSCALERS, hpa())

    def make(client: Any, informers: Any) -> HorizontalPodAutoscalerController:
        return HorizontalPodAutoscalerController(client, informers,
                                                 recorder=EventRecorder(client, "horizontal-pod-autoscaler"))

    async with running(fake, make):
        await eventually(lambda: fake.objects(DEPLOYMENTS, "default")[0]["spec"]["replicas"] == 2)
        status = await eventually(lambda: (s := fake.objects(HORIZONTALPODAUTOSCALERS, "default")[0]
                                           ["status"]).get("desiredReplicas") == 2 and s)
        assert status["lastScaleTime"] and status["currentReplicas"] in (1, 2)
        reasons = {c["type"]: c["reason"] for c in status["conditions"]}
        assert reasons["AbleToScale"] in ("SucceededRescale", "SucceededGetScale")
        scale_patches = [a for a in fake.writes() if a.resource == "deployments"]
        assert [(a.verb, a.subresource) for a in scale_patches] == [("patch", "scale")]
        await eventually(lambda: any(e.get("reason") == "SuccessfulRescale"
                                     for e in fake.objects(EVENTS, "default")))
