"""SyncClient: the blocking facade over the async client (run from a worker thread here, since
the fake API server lives on the test's event loop)."""

from __future__ import annotations

import asyncio

import pytest

from podns.kube import errors
from podns.kube.config import in_memory
from podns.kube.resources import PODS
from podns.kube.syncclient import SyncClient

from .apiserver import pod
from .conftest import Started

pytestmark = pytest.mark.timeout(20)


async def test_sync_verbs_and_watch(fake: Started) -> None:
    """Blocking create/get/list/patch/delete and a watch iterator behave like the async ones."""
    server, url = fake

    def use() -> list[str]:
        with SyncClient(in_memory([url])) as sc:
            sc.create(PODS, pod("a"))
            assert sc.get(PODS, "a", "default")["metadata"]["name"] == "a"
            sc.patch(PODS, "a", {"metadata": {"labels": {"x": "1"}}}, "default")
            assert len(sc.list_all(PODS, "default")["items"]) == 1
            sc.delete(PODS, "a", "default")
            with pytest.raises(errors.NotFound):
                sc.get(PODS, "a", "default")
            seen = []
            for ev in sc.watch(PODS, "default", resource_version="1"):
                seen.append(ev.type)
                if len(seen) == 3:
                    break
            return seen

    assert await asyncio.to_thread(use) == ["ADDED", "MODIFIED", "DELETED"]
    assert await _drained(server)  # leaving the for loop closed the watch connection


async def _drained(server: object) -> bool:
    for _ in range(100):
        if not server.watchers:  # type: ignore[attr-defined]
            return True
        await asyncio.sleep(0.02)
    return False


async def test_closed_client_refuses(fake: Started) -> None:
    _, url = fake

    def use() -> None:
        sc = SyncClient(in_memory([url]))
        sc.close()
        sc.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            sc.get(PODS, "a", "default")

    await asyncio.to_thread(use)
