"""The StatefulSet controller end to end over a recording fake client, with a fake kubelet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podns.controllers.statefulset.controller import StatefulSetController
from podns.kube.events import EventRecorder
from podns.kube.resources import (
    CONTROLLERREVISIONS,
    EVENTS,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SERVICES,
    STATEFULSETS,
)
from podns.kube.testing import FakeClient

from ._builders import service
from ._harness import eventually, kubelet, running, settle
from .test_statefulset_control import statefulset

pytestmark = pytest.mark.timeout(30)


def _sts(**kw: Any) -> dict[str, Any]:
    obj = statefulset(**kw)
    obj["metadata"].pop("uid")
    obj["metadata"].pop("generation")
    return obj


def pod_names(fake: FakeClient) -> list[str]:
    return sorted(p["metadata"]["name"] for p in fake.objects(PODS, "default"))


def status(fake: FakeClient) -> dict[str, Any]:
    return fake.objects(STATEFULSETS, "default")[0].get("status") or {}


def with_recorder(client: Any, informers: Any) -> StatefulSetController:
    return StatefulSetController(client, informers, recorder=EventRecorder(client, "statefulset-controller"))


async def test_ordered_creation_scale_and_rolling_update() -> None:
    """Given an OrderedReady set of 3 with claims, then pods are created in order each after the
    previous is Ready, with claims; status converges; a template change rolls pods from the
    highest ordinal; scaling down removes the highest first."""
    fake = FakeClient()
    fake.seed(SERVICES, service("db-service", selector={"app": "db"}))
    fake.seed(STATEFULSETS, _sts(claims=True))
    async with running(fake, with_recorder):
        kl = asyncio.create_task(kubelet(fake))
        try:
            await eventually(lambda: status(fake).get("readyReplicas") == 3, timeout=10)
            creates = [a.name for a in fake.writes() if a.verb == "create" and a.resource == "pods"]
            assert creates == ["db-0", "db-1", "db-2"]
            claims = sorted(c["metadata"]["name"] for c in fake.objects(PERSISTENTVOLUMECLAIMS, "default"))
            assert claims == ["data-db-0", "data-db-1", "data-db-2"]
            st = status(fake)
            assert st["currentRevision"] == st["updateRevision"] and st["observedGeneration"] == 1
            assert len(fake.objects(CONTROLLERREVISIONS, "default")) == 1

            sts = fake.objects(STATEFULSETS, "default")[0]
            sts["spec"]["template"]["spec"]["containers"][0]["image"] = "db:2"
            await fake.update(STATEFULSETS, sts)
            fake.clear_actions()
            old_rev = st["updateRevision"]
            await eventually(
                lambda: (
                    (s := status(fake)).get("updatedReplicas") == 3
                    and s["currentRevision"] == s["updateRevision"] != old_rev
                    and s.get("readyReplicas") == 3
                ),
                timeout=10,
            )
            deletes = [a.name for a in fake.writes() if a.verb == "delete" and a.resource == "pods"]
            assert deletes == ["db-2", "db-1", "db-0"]
            assert status(fake)["observedGeneration"] == 2

            sts = fake.objects(STATEFULSETS, "default")[0]
            sts["spec"]["replicas"] = 1
            await fake.update(STATEFULSETS, sts)
            fake.clear_actions()
            await eventually(lambda: pod_names(fake) == ["db-0"] and status(fake).get("replicas") == 1)
            deletes = [a.name for a in fake.writes() if a.verb == "delete" and a.resource == "pods"]
            assert deletes == ["db-2", "db-1"]
        finally:
            kl.cancel()
        await settle(fake)
    reasons = {e["reason"] for e in fake.objects(EVENTS, "default")}
    assert {"SuccessfulCreate", "SuccessfulDelete"} <= reasons


async def test_deleted_pod_comes_back_with_same_name() -> None:
    """Given a running set, when db-1 is deleted, then db-1 is recreated."""
    fake = FakeClient()
    fake.seed(STATEFULSETS, _sts(replicas=2, parallel=True))
    async with running(fake, StatefulSetController):
        kl = asyncio.create_task(kubelet(fake))
        try:
            await eventually(lambda: status(fake).get("readyReplicas") == 2)
            old_uid = next(
                p["metadata"]["uid"] for p in fake.objects(PODS) if p["metadata"]["name"] == "db-1"
            )
            await fake.delete(PODS, "db-1", "default")
            await eventually(
                lambda: any(
                    p["metadata"]["name"] == "db-1" and p["metadata"]["uid"] != old_uid
                    for p in fake.objects(PODS)
                )
            )
        finally:
            kl.cancel()


async def test_bad_input_is_reported_not_retried() -> None:
    """Given a set whose selector does not match its template, and one whose Service is missing,
    then the first gets an InvalidSelector event and no pods; the second a FailedServiceLookup
    event but still its pods."""
    fake = FakeClient()
    bad = _sts(replicas=1)
    bad["metadata"]["name"] = "bad"
    bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    fake.seed(STATEFULSETS, bad)
    fake.seed(STATEFULSETS, _sts(replicas=1))
    async with running(fake, with_recorder) as (ctl,):
        await eventually(lambda: pod_names(fake) == ["db-0"])
        await eventually(
            lambda: (
                {e["reason"] for e in fake.objects(EVENTS, "default")}
                >= {"InvalidSelector", "FailedServiceLookup"}
            )
        )
        await settle(fake)
        assert ctl.failures == 0


async def test_orphan_adopted_foreign_pod_reported_and_mismatch_released() -> None:
    """Given an orphan pod db-0 matching the selector, a foreign pod db-1 (other owner), then db-0
    is adopted (not recreated), db-1 yields a FailedCreate event and back-off (no hot loop), and a
    pod relabelled out of the selector is released."""
    fake = FakeClient()
    fake.seed(STATEFULSETS, _sts(replicas=3, parallel=True))
    orphan = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "db-0", "namespace": "default", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "db", "image": "db:1"}]},
    }
    fake.seed(PODS, orphan)
    foreign = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "db-1",
            "namespace": "default",
            "labels": {"app": "other"},
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": "x", "uid": "x", "controller": True}
            ],
        },
        "spec": {"containers": [{"name": "c", "image": "c"}]},
    }
    fake.seed(PODS, foreign)

    def pod(name: str) -> dict[str, Any]:
        return next(p for p in fake.objects(PODS) if p["metadata"]["name"] == name)

    async with running(fake, with_recorder):
        await eventually(
            lambda: (pod("db-0")["metadata"].get("ownerReferences") or [{}])[0].get("kind") == "StatefulSet"
        )
        await eventually(lambda: "db-2" in pod_names(fake))
        await eventually(lambda: any(e["reason"] == "FailedCreate" for e in fake.objects(EVENTS, "default")))
        creates = [a.name for a in fake.writes() if a.verb == "create" and a.resource == "pods"]
        assert "db-0" not in creates and creates.count("db-1") < 10
        p2 = pod("db-2")
        p2["metadata"]["labels"]["app"] = "moved"
        await fake.update(PODS, p2)
        await eventually(lambda: not pod("db-2")["metadata"].get("ownerReferences"))


async def test_rejected_pod_gives_failed_create_and_backs_off() -> None:
    """Given the API rejects the pod (422), then a FailedCreate event carries the reason and the
    set is retried with growing back-off (a handful of attempts, not a hot loop)."""
    from podns.kube import errors

    fake = FakeClient()
    fake.seed(STATEFULSETS, _sts(replicas=1))

    def reject(action: Any) -> Any:
        raise errors.Invalid(
            {
                "kind": "Status",
                "code": 422,
                "reason": "Invalid",
                "message": 'Pod "db-0" is invalid: spec.containers[0].image: Required value',
            }
        )

    fake.prepend_reactor("create", "pods", reject)
    async with running(fake, with_recorder):
        await eventually(lambda: any(e["reason"] == "FailedCreate" for e in fake.objects(EVENTS, "default")))
        await asyncio.sleep(0.5)
    ev = next(e for e in fake.objects(EVENTS, "default") if e["reason"] == "FailedCreate")
    assert "spec.containers[0].image: Required value" in ev["message"] and ev["type"] == "Warning"
    attempts = [a for a in fake.actions if a.verb == "create" and a.resource == "pods"]
    assert 3 <= len(attempts) <= 12
