"""The EndpointSlice and Endpoints controllers end to end over a recording fake client."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podns.controllers.endpoints.controller import EndpointsController
from podns.controllers.endpointslice.controller import EndpointSliceController
from podns.kube import errors
from podns.kube.resources import ENDPOINTS, ENDPOINTSLICES, PODS, SERVICES
from podns.kube.testing import FakeClient

from ._builders import pod, service
from ._harness import eventually, running, settle

pytestmark = pytest.mark.timeout(30)


def _fresh(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["metadata"].pop("uid", None)
    return obj


def slices(fake: FakeClient) -> list[dict[str, Any]]:
    return fake.objects(ENDPOINTSLICES, "default")


def ready_map(fake: FakeClient) -> dict[str, bool]:
    return {e["targetRef"]["name"]: e["conditions"]["ready"] for s in slices(fake) for e in s["endpoints"]}


async def test_slices_follow_pods_readiness_and_deletion() -> None:
    """Given a Service and pods, then a slice appears; a readiness flip is one update; deleting
    the Service deletes its slices and the Endpoints object."""
    fake = FakeClient()
    fake.seed(SERVICES, _fresh(service()))
    for i in range(3):
        fake.seed(PODS, _fresh(pod(f"db-{i}", ip=f"10.0.0.{i + 1}", ready=i != 2)))
    async with running(fake, EndpointSliceController, EndpointsController):
        await eventually(lambda: ready_map(fake) == {"db-0": True, "db-1": True, "db-2": False})
        await eventually(lambda: fake.objects(ENDPOINTS, "default"))
        await settle(fake)
        fake.clear_actions()
        p = next(o for o in fake.objects(PODS, "default") if o["metadata"]["name"] == "db-2")
        p["status"]["conditions"][0]["status"] = "True"
        await fake.update_status(PODS, p)
        await eventually(lambda: ready_map(fake)["db-2"])
        await settle(fake)
        writes = [(a.verb, a.resource) for a in fake.writes()]
        assert writes.count(("update", "endpointslices")) == 1
        assert ("create", "endpointslices") not in writes
        ep = fake.objects(ENDPOINTS, "default")[0]
        assert len(ep["subsets"][0]["addresses"]) == 3
        await fake.delete(SERVICES, "db", "default")
        await eventually(lambda: not slices(fake) and not fake.objects(ENDPOINTS, "default"))


async def test_selectorless_service_slices_untouched_and_no_pods_placeholder() -> None:
    """Given a selector-less Service with a user slice, and a Service matching nothing, then the
    user slice is never written and the other Service gets one empty placeholder slice."""
    fake = FakeClient()
    fake.seed(SERVICES, _fresh(service("ext", selector={})))
    fake.seed(SERVICES, _fresh(service("lonely", selector={"app": "nothing"})))
    user = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "ext-1",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": "ext"},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["192.0.2.1"]}],
        "ports": [],
    }
    fake.seed(ENDPOINTSLICES, user)
    async with running(fake, EndpointSliceController):
        await eventually(
            lambda: any(
                s["metadata"]["labels"]["kubernetes.io/service-name"] == "lonely" for s in slices(fake)
            )
        )
        await settle(fake)
    lonely = [s for s in slices(fake) if s["metadata"]["labels"]["kubernetes.io/service-name"] == "lonely"]
    assert len(lonely) == 1 and lonely[0]["endpoints"] == []
    assert not [a for a in fake.writes() if a.name == "ext-1"]


async def test_user_edit_of_managed_slice_is_reverted_and_restart_writes_nothing() -> None:
    """Given a converged slice, when a user empties it, then the controller puts the endpoints
    back; a restarted controller on a converged state makes no write."""
    fake = FakeClient()
    fake.seed(SERVICES, _fresh(service()))
    fake.seed(PODS, _fresh(pod("db-0")))
    async with running(fake, EndpointSliceController):
        await eventually(lambda: ready_map(fake) == {"db-0": True})
        sl = slices(fake)[0]
        sl["endpoints"] = []
        await fake.update(ENDPOINTSLICES, sl)
        await eventually(lambda: ready_map(fake) == {"db-0": True})
        await settle(fake)
    fake.clear_actions()
    async with running(fake, EndpointSliceController):
        await settle(fake)
    assert fake.writes() == []


async def test_conflicting_write_is_retried() -> None:
    """Given the first slice update fails with a Conflict, then the controller retries and
    converges (no stuck queue)."""
    fake = FakeClient()
    fake.seed(SERVICES, _fresh(service()))
    fake.seed(PODS, _fresh(pod("db-0")))
    failed: list[int] = []

    def conflict_once(action: Any) -> Any:
        if not failed:
            failed.append(1)
            raise errors.Conflict({"kind": "Status", "code": 409, "reason": "Conflict", "message": "x"})
        return None

    async with running(fake, EndpointSliceController):
        await eventually(lambda: ready_map(fake) == {"db-0": True})
        fake.prepend_reactor("update", "endpointslices", conflict_once)
        p = fake.objects(PODS, "default")[0]
        p["status"]["conditions"][0]["status"] = "False"
        await fake.update_status(PODS, p)
        await eventually(lambda: ready_map(fake) == {"db-0": False})
    assert failed
