"""The watch cache: an in-memory ring of recent events fanned out to many watchers.

Backends that own their revision counter (SQLite, memory) append every committed change here
in revision order; `watch(prefix, from_rv)` replays the ring from `from_rv` and then follows
live changes. This mirrors the Kubernetes API server's watch cache:

- history is bounded (`capacity` events); a watch from a revision older than the oldest event
  kept raises `Expired`, and so does one from before the process started (the ring starts
  empty at the store's revision on open), so clients relist;
- writers never block on watchers: each watcher has a bounded queue, and a watcher that
  falls `queue_size` events behind is dropped; its iterator raises `Expired` once it has
  drained what it was given, so its client relists instead of stalling everyone else.

Event objects are shared by every watcher that receives them: treat them as read-only.
Everything here runs on one event loop; nothing is thread-safe.
"""

from __future__ import annotations

import asyncio
from collections import deque

from podns.store.errors import Expired
from podns.store.interface import WatchEvent, WatchStream

#: events kept for watches that resume from an older revision (Kubernetes' watch cache keeps
#: about 100 events per resource but grows to minutes of history; 10,000 events is a few
#: minutes of a busy small cluster at a few hundred bytes each)
DEFAULT_CAPACITY = 10_000
#: events a watcher may fall behind before it is dropped with Expired (Kubernetes buffers 100
#: per watcher and then blocks the dispatcher briefly; we never block, so allow more slack)
DEFAULT_QUEUE_SIZE = 4096


def key_matches(key: str, prefix: str) -> bool:
    """Whether `key` is selected by `prefix`: a subtree when it ends in `/` (or is empty),
    else exactly that key."""
    if not prefix or prefix.endswith("/"):
        return key.startswith(prefix)
    return key == prefix


def _bucket(prefix: str) -> str:
    """The index bucket of a watch prefix: its resource segment, "" for everything."""
    return prefix.partition("/")[0]


class _Watcher:
    """One watch's queue and state."""

    __slots__ = ("after", "dropped", "limit", "prefix", "queue", "waiter")

    def __init__(self, prefix: str, after: int, limit: int) -> None:
        self.prefix = prefix
        #: events at or before this revision are not wanted (a watch from a future revision)
        self.after = after
        #: queue length beyond which the watcher is dropped
        self.limit = limit
        self.queue: deque[WatchEvent | None] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.dropped = False

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class WatchCache:
    """Ring of recent events with non-blocking fan-out to watchers."""

    def __init__(
        self,
        start_rv: int,
        *,
        capacity: int = DEFAULT_CAPACITY,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        """`start_rv`: the store's revision now; events after it are appended in order."""
        self._ring: deque[WatchEvent] = deque()
        self._capacity = capacity
        self._queue_size = queue_size
        #: every event with rv > _floor is in the ring
        self._floor = start_rv
        #: watchers by the first segment of their prefix (the resource), so a write only
        #: visits the watchers of its resource plus those of everything ("")
        self._watchers: dict[str, set[_Watcher]] = {}
        self._closed = False

    @property
    def floor(self) -> int:
        """The oldest revision a watch may start from."""
        return self._floor

    def append(self, event: WatchEvent) -> None:
        """Record a committed change and hand it to every matching watcher, without blocking."""
        ring = self._ring
        ring.append(event)
        if len(ring) > self._capacity:
            self._floor = ring.popleft().rv
        key = event.key
        dropped: list[_Watcher] = []
        for w in self._candidates(key):
            if event.rv <= w.after or not key_matches(key, w.prefix):
                continue
            if len(w.queue) >= w.limit:
                w.dropped = True
                dropped.append(w)
            else:
                w.queue.append(event)
            w.wake()
        for w in dropped:
            self._unregister(w)

    def compact(self, rv: int) -> None:
        """Forget events with revision <= `rv`."""
        ring = self._ring
        while ring and ring[0].rv <= rv:
            ring.popleft()
        self._floor = max(self._floor, rv)

    def close(self) -> None:
        """End every watch (their iterators finish normally)."""
        self._closed = True
        for group in self._watchers.values():
            for w in group:
                w.queue.append(None)
                w.wake()
        self._watchers.clear()

    def watch(self, prefix: str, from_rv: int) -> WatchStream:
        """Events under `prefix` with revision > `from_rv`, then live ones. See the module doc.

        The iterator registers on its first `__anext__` (raising Expired there when `from_rv`
        is too old) and is cancellation-safe: a `wait_for(anext(w), t)` that times out leaves
        the watch intact, so callers may poll with timeouts (bookmarks, timeoutSeconds).
        """
        return _WatchIterator(self, prefix, from_rv)

    def _register(self, prefix: str, from_rv: int) -> _Watcher | None:
        """Start a watcher with its backlog; None when the cache is closed."""
        if from_rv < self._floor:
            raise Expired(f"too old resource version: {from_rv} ({self._floor})")
        if self._closed:
            return None
        # Replay and registration happen without an await in between: no gap, no duplicate.
        backlog = [e for e in self._ring if e.rv > from_rv and key_matches(e.key, prefix)]
        w = _Watcher(prefix, from_rv, self._queue_size + len(backlog))
        w.queue.extend(backlog)
        self._watchers.setdefault(_bucket(prefix), set()).add(w)
        return w

    def _unregister(self, w: _Watcher) -> None:
        bucket = _bucket(w.prefix)
        group = self._watchers.get(bucket)
        if group is not None:
            group.discard(w)
            if not group:
                del self._watchers[bucket]

    def _candidates(self, key: str) -> list[_Watcher]:
        """The watchers whose prefix may select `key` (a copy: the caller may unregister)."""
        out: list[_Watcher] = []
        segment = key.partition("/")[0]
        for bucket in (segment, "") if segment else ("",):
            group = self._watchers.get(bucket)
            if group:
                out.extend(group)
        return out


class _WatchIterator:
    """One watch as an async iterator (not an async generator, so cancelling a pending
    `__anext__` does not end the watch)."""

    def __init__(self, cache: WatchCache, prefix: str, from_rv: int) -> None:
        self._cache = cache
        self._prefix = prefix
        self._from_rv = from_rv
        self._w: _Watcher | None = None
        self._done = False

    def __aiter__(self) -> _WatchIterator:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._done:
            raise StopAsyncIteration
        w = self._w
        if w is None:
            try:
                w = self._w = self._cache._register(self._prefix, self._from_rv)
            except Expired:
                self._done = True
                raise
            if w is None:
                self._done = True
                raise StopAsyncIteration
        while True:
            if w.queue:
                event = w.queue.popleft()
                if event is None:
                    await self.aclose()
                    raise StopAsyncIteration
                return event
            if w.dropped:
                await self.aclose()
                raise Expired("watcher fell too far behind; relist")
            waiter = w.waiter
            if waiter is None or waiter.done():
                waiter = w.waiter = asyncio.get_running_loop().create_future()
            await waiter

    def __del__(self) -> None:
        # A watch dropped without aclose() must not stay registered (its queue would fill).
        if self._w is not None and not self._done:
            self._cache._unregister(self._w)

    async def aclose(self) -> None:
        """Stop the watch and release its queue."""
        self._done = True
        if self._w is not None:
            self._cache._unregister(self._w)
            self._w.queue.clear()
