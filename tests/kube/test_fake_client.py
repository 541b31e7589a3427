"""FakeClient: records actions, models versions and conflicts, and drives a real Informer."""

from __future__ import annotations

import asyncio

import pytest

from podns.kube import errors
from podns.kube.informer import Informer
from podns.kube.resources import NODES, PODS, SERVICES
from podns.kube.testing import Action, FakeClient

pytestmark = pytest.mark.timeout(10)


def pod(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels}, "spec": {}}


async def test_records_actions_and_models_versions() -> None:
    """Writes are recorded in order; updates bump versions; a stale update conflicts."""
    fc = FakeClient((PODS, pod("seeded")))
    created = await fc.create(PODS, pod("a", app="x"))
    assert created["metadata"]["uid"] and created["kind"] == "Pod"
    created["spec"]["nodeName"] = "n1"
    updated = await fc.update(PODS, created)
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert updated["metadata"]["generation"] == 2
    with pytest.raises(errors.Conflict):
        await fc.update(PODS, created)
    await fc.patch(PODS, "a", {"metadata": {"labels": {"b": "2"}}}, "ns")
    await fc.patch(PODS, "a", [{"op": "replace", "path": "/spec/nodeName", "value": "n2"}], "ns",
                   patch_type="json")
    status = {**updated, "status": {"phase": "Running"}}
    status["metadata"] = {**updated["metadata"], "resourceVersion": None}
    await fc.update_status(PODS, status)
    got = await fc.get(PODS, "a", "ns")
    assert got["metadata"]["labels"] == {"app": "x", "b": "2"}
    assert got["spec"]["nodeName"] == "n2" and got["status"] == {"phase": "Running"}
    await fc.delete(PODS, "a", "ns")
    with pytest.raises(errors.NotFound):
        await fc.get(PODS, "a", "ns")
    assert [(a.verb, a.resource, a.name, a.subresource) for a in fc.writes()] == [
        ("create", "pods", "a", None), ("update", "pods", "a", None),
        ("update", "pods", "a", None), ("patch", "pods", "a", None),
        ("patch", "pods", "a", None), ("update", "pods", "a", "status"),
        ("delete", "pods", "a", None)]
    assert all(isinstance(a, Action) for a in fc.actions)


async def test_copies_protect_the_store() -> None:
    """Mutating a returned object does not change the fake's state."""
    fc = FakeClient((PODS, pod("a")))
    got = await fc.get(PODS, "a", "ns")
    got["metadata"]["labels"]["evil"] = "1"
    assert (await fc.get(PODS, "a", "ns"))["metadata"]["labels"] == {}


async def test_selectors_paging_and_scope() -> None:
    """Label/field selectors filter; limit pages; cluster-scoped objects have no namespace."""
    fc = FakeClient(*[(PODS, pod(f"p{i}", app="db" if i % 2 else "web")) for i in range(5)])
    await fc.create(NODES, {"metadata": {"name": "n1", "namespace": "ignored"}})
    dbs = await fc.list(PODS, "ns", label_selector="app=db")
    assert [o["metadata"]["name"] for o in dbs["items"]] == ["p1", "p3"]
    one = await fc.list(PODS, field_selector="metadata.name=p4")
    assert [o["metadata"]["name"] for o in one["items"]] == ["p4"]
    page = await fc.list(PODS, "ns", limit=2)
    assert len(page["items"]) == 2 and page["metadata"]["continue"] == "2"
    assert "namespace" not in (await fc.get(NODES, "n1"))["metadata"]
    with pytest.raises(ValueError, match="namespace is required"):
        await fc.get(PODS, "p1")


@pytest.mark.parametrize(("ops", "error"), [
    ([{"op": "test", "path": "/metadata/name", "value": "b"}], errors.Invalid),
    ([{"op": "remove", "path": "/spec/missing"}], errors.Invalid),
    ([{"op": "frobnicate", "path": "/spec"}], errors.BadRequest),
], ids=["test-fails", "remove-missing", "unknown-op"])
async def test_json_patch_errors_are_api_errors(ops: list, error: type[errors.APIError]) -> None:
    """Given a JSON patch that does not apply (422) or is malformed (400), then the fake raises
    the APIError the API server's Status would become, and the object is unchanged."""
    fc = FakeClient()
    before = await fc.create(PODS, pod("a"), "ns")
    with pytest.raises(error):
        await fc.patch(PODS, "a", ops, "ns", patch_type="json")
    assert await fc.get(PODS, "a", "ns") == before


async def test_reactor_injects_failure() -> None:
    """A reactor can fail a verb; other verbs are unaffected."""
    fc = FakeClient()

    def fail(action: Action) -> None:
        raise errors.ServerError({"kind": "Status", "code": 500, "message": "boom"})

    fc.prepend_reactor("create", "services", fail)
    with pytest.raises(errors.ServerError):
        await fc.create(SERVICES, {"metadata": {"name": "s"}})
    await fc.create(PODS, pod("a"))
    assert [a.verb for a in fc.writes()] == ["create", "create"]


async def test_informer_runs_on_fake_and_relists_after_gone() -> None:
    """An Informer syncs from the fake, follows its writes, and relists after compaction."""
    fc = FakeClient((PODS, pod("a")))
    inf = Informer(fc, PODS, "ns")
    inf.start()
    await inf.wait_synced(2)
    await fc.create(PODS, pod("b"))
    await fc.delete(PODS, "a", "ns")
    async with asyncio.timeout(2):
        while inf.keys() != ["ns/b"]:  # noqa: ASYNC110 - polling the cache
            await asyncio.sleep(0.01)
    fc.compact()
    fc.inject_watch_error({"kind": "Status", "code": 410, "reason": "Expired", "message": "old"})
    async with asyncio.timeout(2):
        while inf.list_count < 2:  # noqa: ASYNC110 - polling the counter
            await asyncio.sleep(0.01)
    assert inf.keys() == ["ns/b"]
    await inf.stop()
