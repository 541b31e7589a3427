"""The Deployment and ReplicaSet controllers end to end over a recording fake client, with a
fake kubelet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podns.controllers.deployment import util as du
from podns.controllers.deployment.controller import DeploymentController
from podns.controllers.replicaset.controller import ReplicaSetController
from podns.kube.events import EventRecorder
from podns.kube.resources import DEPLOYMENTS, EVENTS, PODS, REPLICASETS
from podns.kube.testing import FakeClient

from ._harness import eventually, kubelet, running, settle
from .test_deployment_sync import deployment

pytestmark = pytest.mark.timeout(60)


def _deployment(**kw: Any) -> dict[str, Any]:
    obj = deployment(**kw)
    obj["metadata"].pop("uid")
    obj["metadata"].pop("generation")
    obj.pop("status")
    return obj


def deployments(client: Any, informers: Any) -> DeploymentController:
    return DeploymentController(client, informers, recorder=EventRecorder(client, "deployment-controller"))


def replicasets(client: Any, informers: Any) -> ReplicaSetController:
    return ReplicaSetController(client, informers, recorder=EventRecorder(client, "replicaset-controller"))


def live_pods(fake: FakeClient) -> list[dict[str, Any]]:
    return fake.objects(PODS, "default")


def d_status(fake: FakeClient) -> dict[str, Any]:
    return fake.objects(DEPLOYMENTS, "default")[0].get("status") or {}


def ready_count(fake: FakeClient) -> int:
    return sum(1 for p in live_pods(fake)
               if any(c["type"] == "Ready" and c["status"] == "True"
                      for c in (p.get("status") or {}).get("conditions") or []))


async def test_create_rollout_scale() -> None:
    """Given a Deployment of 3, then one ReplicaSet and 3 pods named `<rs>-xxxxx` appear, the
    status converges (3/3, Available, NewReplicaSetAvailable); a new image rolls all pods with
    maxUnavailable 0 without ever fewer than 3 Ready pods; scaling to 1 leaves one pod."""
    fake = FakeClient()
    fake.seed(DEPLOYMENTS, _deployment(replicas=3, surge=1, unavailable=0))
    async with running(fake, deployments, replicasets):
        kl = asyncio.create_task(kubelet(fake))
        try:
            await eventually(lambda: d_status(fake).get("availableReplicas") == 3, timeout=15)
            sets = fake.objects(REPLICASETS, "default")
            assert len(sets) == 1
            rs_name = sets[0]["metadata"]["name"]
            assert all(p["metadata"]["name"].startswith(rs_name + "-") for p in live_pods(fake))
            cond = du.condition(d_status(fake), du.PROGRESSING)
            await eventually(lambda: (du.condition(d_status(fake), du.PROGRESSING) or {}).get("reason")
                             == du.NEW_RS_AVAILABLE)
            assert cond is not None

            lowest: list[int] = [3]

            async def watch_ready() -> None:
                while True:
                    lowest[0] = min(lowest[0], ready_count(fake))
                    await asyncio.sleep(0.002)

            watcher = asyncio.create_task(watch_ready())
            d = fake.objects(DEPLOYMENTS, "default")[0]
            d["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
            await fake.update(DEPLOYMENTS, d)
            await eventually(lambda: (s := d_status(fake)).get("updatedReplicas") == 3
                             and s.get("replicas") == 3 and s.get("availableReplicas") == 3
                             and s.get("observedGeneration") == 2, timeout=20)
            watcher.cancel()
            assert lowest[0] >= 3
            assert {p["spec"]["containers"][0]["image"] for p in live_pods(fake)} == {"web:2"}
            assert fake.objects(DEPLOYMENTS, "default")[0]["metadata"]["annotations"][du.REVISION] == "2"

            d = fake.objects(DEPLOYMENTS, "default")[0]
            d["spec"]["replicas"] = 1
            await fake.update(DEPLOYMENTS, d)
            await eventually(lambda: len(live_pods(fake)) == 1 and d_status(fake).get("replicas") == 1)
        finally:
            kl.cancel()
        await settle(fake)
    reasons = {e["reason"] for e in fake.objects(EVENTS, "default")}
    assert {"ScalingReplicaSet", "SuccessfulCreate", "SuccessfulDelete"} <= reasons


async def test_no_double_create_while_cache_lags() -> None:
    """Given a ReplicaSet of 5 whose pod creations reach the cache late, then exactly 5 pods are
    created (expectations), not more."""
    fake = FakeClient()
    fake.seed(DEPLOYMENTS, _deployment(replicas=5))
    async with running(fake, deployments, replicasets):
        await eventually(lambda: len(live_pods(fake)) == 5)
        await settle(fake, quiet=0.3)
    creates = [a for a in fake.writes() if a.verb == "create" and a.resource == "pods"]
    assert len(creates) == 5


async def test_adopts_orphan_replica_set_and_pods() -> None:
    """Given an orphan ReplicaSet matching the Deployment's selector and template, then the
    Deployment adopts it instead of creating a new one, and the orphan pod matching the
    ReplicaSet is adopted by it."""
    fake = FakeClient()
    d = _deployment(replicas=1)
    tmpl = d["spec"]["template"]
    orphan_rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-old", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web", du.POD_TEMPLATE_HASH: "x"}},
                 "template": {"metadata": {"labels": {"app": "web", du.POD_TEMPLATE_HASH: "x"}},
                              "spec": tmpl["spec"]}},
    }
    orphan_pod = {"apiVersion": "v1", "kind": "Pod",
                  "metadata": {"name": "web-old-1", "namespace": "default",
                               "labels": {"app": "web", du.POD_TEMPLATE_HASH: "x"}},
                  "spec": tmpl["spec"]}
    fake.seed(REPLICASETS, orphan_rs)
    fake.seed(PODS, orphan_pod)
    fake.seed(DEPLOYMENTS, d)
    async with running(fake, deployments, replicasets):
        await eventually(lambda: (fake.objects(REPLICASETS, "default")[0]["metadata"].get("ownerReferences")
                                  or [{}])[0].get("kind") == "Deployment")
        await eventually(lambda: (live_pods(fake)[0]["metadata"].get("ownerReferences")
                                  or [{}])[0].get("kind") == "ReplicaSet")
        await settle(fake)
    assert [r["metadata"]["name"] for r in fake.objects(REPLICASETS, "default")] == ["web-old"]
    assert [p["metadata"]["name"] for p in live_pods(fake)] == ["web-old-1"]


async def test_failed_pod_creation_sets_replica_failure() -> None:
    """Given the API refuses pods (403 quota), then the ReplicaSet gets ReplicaFailure
    FailedCreate and the Deployment copies it; creation is retried with back-off, not hot."""
    from podns.kube import errors

    fake = FakeClient()
    fake.seed(DEPLOYMENTS, _deployment(replicas=2))

    def refuse(action: Any) -> Any:
        raise errors.Forbidden({"kind": "Status", "code": 403, "reason": "Forbidden",
                                "message": 'pods "web-" is forbidden: exceeded quota'})

    fake.prepend_reactor("create", "pods", refuse)
    async with running(fake, deployments, replicasets):
        await eventually(lambda: (du.condition(d_status(fake), du.REPLICA_FAILURE) or {}).get("reason")
                         == "FailedCreate", timeout=10)
        await asyncio.sleep(0.3)
    attempts = [a for a in fake.actions if a.verb == "create" and a.resource == "pods"]
    assert 1 <= len(attempts) <= 15
    ev = next(e for e in fake.objects(EVENTS, "default") if e["reason"] == "FailedCreate")
    assert "exceeded quota" in ev["message"] and ev["involvedObject"]["kind"] == "ReplicaSet"
