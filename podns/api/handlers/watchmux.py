"""One store watch per resource, shared by every API watch of it (for stores without fan-out).

The SQLite and memory stores fan one in-memory ring out to all their watchers; the etcd store
opens one etcd watch stream per watcher, so a hundred `kubectl get -w` or informers would be a
hundred etcd streams and a hundred decodes of every event. `WatchMux` puts kube-apiserver's
answer in front of such a store: per resource (`pods/`, `statefulsets.apps/`) one store watch
feeds a `WatchCache` ring (`podns.store.watchcache`) that every API watch of that resource
reads, filtered by its own key prefix.

A watch from a version older than the ring (or from before the shared watch started) goes to
the store directly, which replays etcd's history or answers Expired as before. When the store
is unavailable (etcd without quorum: its watch gives up after the store's timeout), the ring
stays open and the shared watch is re-opened from its last revision every `RETRY_SECONDS`, so
API watches keep what they have and simply see the next events once etcd is back, as
kube-apiserver's watch cache does. When the shared watch ends otherwise (compacted history, a
bug), the ring is closed, which ends the API watches reading it (their clients re-watch, as
after any closed stream) and the next watch starts a new shared one. Everything runs on one
event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from podns.store.errors import Expired, StoreError
from podns.store.interface import Store, WatchEvent, WatchStream
from podns.store.watchcache import WatchCache

log = logging.getLogger(__name__)

#: events kept per resource for watches that start a little behind (a list, then a watch)
RING_CAPACITY = 2000
#: seconds between attempts to re-open a shared watch the store could not serve
RETRY_SECONDS = 0.5


def needs_mux(store: Store) -> bool:
    """Whether the store opens a backend stream per watch (etcd) rather than sharing a ring."""
    return type(store).__module__ == "podns.store.etcd"


class _Shared:
    """The shared watch of one resource root."""

    def __init__(self, cache: WatchCache, task: asyncio.Task[None]) -> None:
        self.cache = cache
        self.task = task


class WatchMux:
    """`watch(prefix, from_rv)` with the Store's semantics, sharing one store watch per root."""

    def __init__(self, store: Store, capacity: int = RING_CAPACITY) -> None:
        self.store = store
        self.capacity = capacity
        self._shared: dict[str, _Shared] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    async def watch(self, prefix: str, from_rv: int) -> WatchStream:
        """Events under `prefix` after `from_rv` (raises the store's Expired when too old)."""
        root = prefix.split("/", 1)[0] + "/"
        shared = await self._get(root)
        if shared is None or from_rv < shared.cache.floor:
            return self.store.watch(prefix, from_rv)
        return _After(shared.cache.watch(prefix, from_rv), from_rv)

    async def _get(self, root: str) -> _Shared | None:
        shared = self._shared.get(root)
        if shared is not None and not shared.task.done():
            return shared
        lock = self._starting.setdefault(root, asyncio.Lock())
        async with lock:
            shared = self._shared.get(root)
            if shared is not None and not shared.task.done():
                return shared
            try:
                start = await self.store.current_rv()
            except StoreError:
                return None
            cache = WatchCache(start, capacity=self.capacity)
            task = asyncio.create_task(self._feed(root, start, cache), name=f"watchmux-{root}")
            shared = self._shared[root] = _Shared(cache, task)
            return shared

    async def _feed(self, root: str, start: int, cache: WatchCache) -> None:
        """Append the store's events under `root` to the ring. When the store is unavailable
        (etcd without quorum) the ring stays open, so its API watches stay open with what they
        got, and the store watch is re-opened from the last revision until the store answers
        again (kube-apiserver's watch cache keeps its watchers through an etcd outage too).
        Expired (the history is gone) or a bug closes the ring: its API watches end."""
        last = start
        try:
            while True:
                events = self.store.watch(root, last)
                try:
                    async for event in events:
                        cache.append(event)
                        last = event.rv
                    return
                except Expired as exc:
                    log.info("shared watch of %s ended: %s", root, exc)
                    return
                except StoreError as exc:
                    log.info("shared watch of %s paused, retrying: %s", root, exc)
                finally:
                    with contextlib.suppress(Exception):
                        await events.aclose()
                await asyncio.sleep(RETRY_SECONDS)
        except Exception:  # a bug: still close the ring, so its API watches end cleanly
            log.exception("shared watch of %s failed", root)
        finally:
            cache.close()

    async def close(self) -> None:
        """Stop every shared watch (their API watches end)."""
        for shared in self._shared.values():
            shared.task.cancel()
        for shared in self._shared.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await shared.task
        self._shared.clear()


class _After:
    """Skips events at or before `from_rv` (a watch registered while the feed lagged). A class,
    not an async generator, so a cancelled pending `__anext__` (bookmark timeouts) leaves the
    watch intact, as the ring's own iterator does."""

    def __init__(self, events: WatchStream, from_rv: int) -> None:
        self._events = events
        self._from_rv = from_rv

    def __aiter__(self) -> _After:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            event = await anext(self._events)
            if event.rv > self._from_rv:
                return event

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self._events.aclose()
