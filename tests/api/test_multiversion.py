"""A kind served in two versions (HorizontalPodAutoscaler: autoscaling/v2 stored, v1 converted)
over HTTP: what is written in one version reads back in the other, lists and watch events of
v1 carry v1 objects, patches apply to the version the client asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from podns.api.resources.registry import REGISTRY

from .conftest import Api, serve

pytestmark = pytest.mark.timeout(30)

V1 = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers"
V2 = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers"
HPA_V1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                   "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}}


@pytest.fixture
async def kapi(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve(tmp_path, types=list(REGISTRY)) as a:
        yield a


async def test_written_in_v1_read_in_both(kapi: Api) -> None:
    """Given a v1 create, then the answer is v1, the v2 read has the CPU metric, the v1 list is
    a v1 List of v1 objects, and a strict unknown field is reported at its path."""
    r = await kapi.post(V1, HPA_V1)
    assert r.status == 201, r.body
    assert r.body["apiVersion"] == "autoscaling/v1" and r.body["spec"]["targetCPUUtilizationPercentage"] == 70
    v2 = await kapi.get(f"{V2}/web")
    assert v2.body["apiVersion"] == "autoscaling/v2"
    assert v2.body["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    listed = await kapi.get(V1)
    assert listed.body["apiVersion"] == "autoscaling/v1"
    assert [i["apiVersion"] for i in listed.body["items"]] == ["autoscaling/v1"]
    typo = {**HPA_V1, "metadata": {"name": "typo"}, "spec": {**HPA_V1["spec"], "maxReplica": 3}}
    bad = await kapi.post(f"{V1}?fieldValidation=Strict", typo)
    assert bad.status == 400 and 'unknown field "spec.maxReplica"' in bad.body["message"]


async def test_patch_in_v1_keeps_v2_only_fields(kapi: Api) -> None:
    """Given a v2 HPA with a memory metric, then a v1 merge patch of maxReplicas keeps that
    metric (carried through the v1 annotation) and answers v1."""
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "500Mi"}}}
    body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "mem"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                     "metrics": [memory]}}
    assert (await kapi.post(V2, body)).status == 201
    r = await kapi.patch(f"{V1}/mem", {"spec": {"maxReplicas": 6}})
    assert r.status == 200, r.body
    assert r.body["apiVersion"] == "autoscaling/v1" and r.body["spec"]["maxReplicas"] == 6
    stored = (await kapi.get(f"{V2}/mem")).body
    assert stored["spec"]["metrics"] == [memory] and stored["spec"]["maxReplicas"] == 6
    assert "annotations" not in stored["metadata"]


async def test_v1_watch_sends_v1_objects(kapi: Api) -> None:
    """Given a v1 watch, then the events of objects written in v2 carry v1 objects."""
    headers = {"Authorization": f"Bearer {kapi.token}"}
    async with aiohttp.ClientSession() as session, session.get(
            f"{kapi.server.url}{V1}?watch=true&resourceVersion=1", headers=headers) as resp:
        body = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "watched"},
                "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}}
        assert (await kapi.post(V2, body)).status == 201
        line = await asyncio.wait_for(resp.content.readline(), 10)
        event = orjson.loads(line)
    assert event["type"] == "ADDED" and event["object"]["apiVersion"] == "autoscaling/v1"
    assert event["object"]["spec"]["targetCPUUtilizationPercentage"] == 80  # the v2 default
