"""The replication manager: ReplicationControllers (a label map as selector) run by the
ReplicaSet logic, against the fake client."""

from __future__ import annotations

from typing import Any

import pytest

from podns.controllers.replicaset.controller import ReplicationManager
from podns.kube.events import EventRecorder
from podns.kube.resources import PODS, REPLICATIONCONTROLLERS
from podns.kube.testing import FakeClient

from ._harness import eventually, running

pytestmark = pytest.mark.timeout(30)


def manager(client: Any, informers: Any) -> ReplicationManager:
    return ReplicationManager(client, informers, recorder=EventRecorder(client, "replication-controller"))


async def test_replication_controller_runs_its_pods() -> None:
    """Given a ReplicationController of 3 selecting `app=web`, then 3 pods from its template are
    created, owned by it; its status counts them; an orphan pod with other labels is left alone;
    scaling to 1 deletes 2."""
    fake = FakeClient()
    fake.seed(REPLICATIONCONTROLLERS, {
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"replicas": 3, "selector": {"app": "web"},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    fake.seed(PODS, {"metadata": {"name": "stranger", "namespace": "default", "labels": {"app": "db"}},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}})

    def mine() -> list[dict[str, Any]]:
        return [p for p in fake.objects(PODS, "default") if p["metadata"]["name"] != "stranger"]

    async with running(fake, manager):
        await eventually(lambda: len(mine()) == 3)
        refs = [p["metadata"]["ownerReferences"][0] for p in mine()]
        assert {(r["apiVersion"], r["kind"], r["name"], r["controller"]) for r in refs} == {
            ("v1", "ReplicationController", "web", True)}
        assert all(p["metadata"]["generateName"] == "web-" for p in mine())
        await eventually(lambda: fake.objects(REPLICATIONCONTROLLERS, "default")[0]
                         .get("status", {}).get("replicas") == 3)
        rc = fake.objects(REPLICATIONCONTROLLERS, "default")[0]
        assert rc["spec"]["selector"] == {"app": "web"}  # the status write keeps the label map
        stranger = next(p for p in fake.objects(PODS, "default") if p["metadata"]["name"] == "stranger")
        assert not stranger["metadata"].get("ownerReferences")
        await fake.update(REPLICATIONCONTROLLERS, {**rc, "spec": {**rc["spec"], "replicas": 1}})
        await eventually(lambda: len(mine()) == 1)
