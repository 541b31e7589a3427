"""The watch cache on its own: registration, release, close, overflow."""

from __future__ import annotations

import asyncio
import gc

import pytest

from podns.store.errors import Expired
from podns.store.interface import WatchEvent
from podns.store.watchcache import WatchCache, key_matches


def ev(rv: int, key: str = "pods/default/a") -> WatchEvent:
    return WatchEvent("ADDED", key, {"metadata": {"resourceVersion": str(rv)}}, rv)


def registered(cache: WatchCache) -> int:
    return sum(len(g) for g in cache._watchers.values())


@pytest.mark.parametrize(("key", "prefix", "want"), [
    ("pods/default/a", "pods/", True),
    ("pods/default/a", "", True),
    ("pods/default/a", "pods/default/a", True),
    ("pods/default/ab", "pods/default/a", False),
    ("podsx/default/a", "pods/", False),
    ("services/default/a", "pods/", False),
], ids=["subtree", "everything", "exact-key", "exact-not-prefix", "resource-boundary", "other"])
def test_key_matches(key: str, prefix: str, want: bool) -> None:
    """a prefix ending in / selects a subtree; any other selects exactly that key."""
    assert key_matches(key, prefix) is want


async def test_dropped_iterator_unregisters() -> None:
    """given a started watch whose iterator is dropped without aclose, it is unregistered."""
    cache = WatchCache(0)
    w = cache.watch("pods/", 0)
    cache.append(ev(1))
    assert (await anext(w)).rv == 1
    assert registered(cache) == 1
    del w
    gc.collect()
    assert registered(cache) == 0


async def test_close_ends_watches() -> None:
    """given a watcher waiting for events, close() ends its iteration normally."""
    cache = WatchCache(0)
    w = cache.watch("pods/", 0)
    waiting = asyncio.ensure_future(anext(w))
    await asyncio.sleep(0)
    cache.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)


async def test_overflow_drains_then_expires() -> None:
    """given a watcher 3 events over its queue, it gets what was queued, then Expired."""
    cache = WatchCache(0, queue_size=4)
    w = cache.watch("pods/", 0)
    with pytest.raises(TimeoutError):  # registers it, with nothing to replay
        await asyncio.wait_for(anext(w), 0.01)
    for rv in range(1, 8):
        cache.append(ev(rv))
    assert registered(cache) == 0
    assert [(await anext(w)).rv for _ in range(4)] == [1, 2, 3, 4]
    with pytest.raises(Expired):
        await anext(w)


async def test_cancelled_next_keeps_the_watch() -> None:
    """given a pending __anext__ cancelled by a timeout, the next call still gets the event."""
    cache = WatchCache(0)
    w = cache.watch("pods/", 0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(w), 0.05)
    cache.append(ev(1))
    assert (await asyncio.wait_for(anext(w), 1)).rv == 1
