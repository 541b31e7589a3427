"""The informer: list + watch of one resource into a local, indexed cache, with handlers.

An `Informer` lists the resource (remembering the List's resourceVersion), then watches from
that version with bookmarks and a random 300-600 s `timeoutSeconds` (like client-go's
reflector), applying every event to its cache and then calling the registered handlers, in
event order (cache first, then handlers: a handler reading the cache sees the new state).

Failure contract (level-triggered, ARCHITECTURE.md):
- the watch ends cleanly (server timeout)  -> watch again from the last seen resourceVersion;
- the connection drops / no server answers -> back off (0.1 s doubling to 5 s), then resume the
  watch from the last seen resourceVersion (no relist: nothing was lost);
- 410 Gone (history compacted)             -> relist and deliver the difference to the cache
  as add / update / delete events, so caches and handlers converge;
- any other API error                      -> back off, then relist.
While the API is unreachable the cache keeps its (stale) content: `connected` is False and
`last_event_time` / `last_sync_time` say how old it is, so a DNS server can serve on and say so.

Handlers are plain callables; an exception in one is logged and the informer goes on. Objects
in the cache are shared: treat them as frozen (copy before changing). `transform` trims each
object before it is cached (STYLE.md: cache only what you serve); the cache key and version
are taken before the transform, so it may drop any field.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from podns.kube import errors
from podns.kube.client import WatchEvent
from podns.kube.resources import Resource
from podns.objects.meta import object_key

log = logging.getLogger(__name__)

Obj = dict[str, Any]
IndexFunc = Callable[[Obj], list[str]]

#: watch timeout range in seconds, as client-go's reflector (minWatchTimeout 5 min, up to 2x)
WATCH_TIMEOUT_RANGE = (300, 600)
#: back-off between failed attempts, in seconds: first delay and cap
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
#: a watch that stayed open this long (seconds) resets the back-off
HEALTHY_AFTER = 1.0
#: list page size (client-go's pager default)
PAGE_SIZE = 500


class ListWatcher(Protocol):
    """What an informer needs of a client (`Client` and `testing.FakeClient` both fit)."""

    async def list_all(self, resource: Resource, namespace: str | None = None, *,
                       label_selector: str | None = None, field_selector: str | None = None,
                       limit: int | None = None, resource_version: str | None = None,
                       each: Callable[[Obj], Any] | None = None) -> Obj: ...

    def watch(self, resource: Resource, namespace: str | None = None, *,
              resource_version: str | None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = True, on_open: Callable[[], None] | None = None,
              ) -> AsyncIterator[WatchEvent]: ...


class Backoff:
    """Exponential back-off between `initial` and `maximum` seconds, with 10 % jitter."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        """The next delay (and double the one after)."""
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.9, 1.1)

    def reset(self) -> None:
        self._next = self.initial


@dataclass(slots=True)
class _Handler:
    on_add: Callable[[Obj], Any] | None
    on_update: Callable[[Obj, Obj], Any] | None
    on_delete: Callable[[Obj], Any] | None


class Informer:
    """List + watch `resource` (in `namespace`, or all namespaces when None) into a cache.

    `label_selector` / `field_selector` restrict what is cached; `transform(obj) -> obj` trims
    objects before caching; `name` labels log lines and the task.
    """

    def __init__(
        self,
        client: ListWatcher,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        name: str | None = None,
        watch_timeout_range: tuple[int, int] = WATCH_TIMEOUT_RANGE,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.transform = transform
        self.name = name or (f"informer:{resource}" + (f"/{namespace}" if namespace else ""))
        self.watch_timeout_range = watch_timeout_range
        self._cache: dict[str, Obj] = {}
        self._versions: dict[str, str] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self._index_values: dict[str, dict[str, list[str]]] = {}
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: the resourceVersion the next watch starts from (last seen: event, bookmark or list)
        self.resource_version: str | None = None
        #: whether a watch (or list) currently reaches the API server
        self.connected = False
        #: wall-clock time (time.time()) of the last watch event, bookmark included
        self.last_event_time: float | None = None
        #: wall-clock time of the last successful (re)list
        self.last_sync_time: float | None = None
        #: how many times the informer listed (1 after the first sync; more after 410 Gone)
        self.list_count = 0
        #: how many watches were opened
        self.watch_count = 0

    # -- cache reads -------------------------------------------------------------------------

    @property
    def has_synced(self) -> bool:
        """True once the first list has been loaded into the cache (and forever after)."""
        return self._synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait for the first list; returns True. Raises TimeoutError after `timeout` seconds
        (None: wait forever)."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()
        return True

    def get(self, key: str) -> Obj | None:
        """The cached object with this "ns/name" key, or None."""
        return self._cache.get(key)

    def list(self) -> list[Obj]:
        """Every cached object (a new list; the objects are shared, do not modify them)."""
        return list(self._cache.values())

    def keys(self) -> builtins.list[str]:
        """Every cached key."""
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    # -- indexers ----------------------------------------------------------------------------

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index the cache by `fn(obj) -> [value, ...]`; existing objects are indexed now."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists on {self.name}")
        self._indexers[name] = fn
        self._indices[name] = {}
        self._index_values[name] = {}
        for key, obj in self._cache.items():
            self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """The cached objects whose index `name` contains `value`."""
        return [self._cache[k] for k in self.index_keys(name, value) if k in self._cache]

    def index_keys(self, name: str, value: str) -> builtins.list[str]:
        """The keys of the objects whose index `name` contains `value`."""
        try:
            index = self._indices[name]
        except KeyError:
            raise KeyError(f"no index {name!r} on {self.name}") from None
        return sorted(index.get(value, ()))

    def _index_one(self, name: str, key: str, obj: Obj) -> None:
        try:
            values = list(dict.fromkeys(self._indexers[name](obj) or ()))
        except Exception:
            log.exception("%s: index %r failed on %s", self.name, name, key)
            values = []
        self._index_values[name][key] = values
        for value in values:
            self._indices[name].setdefault(value, set()).add(key)

    def _unindex_one(self, name: str, key: str) -> None:
        index = self._indices[name]
        for value in self._index_values[name].pop(key, ()):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    # -- handlers ----------------------------------------------------------------------------

    def add_handler(
        self,
        *,
        on_add: Callable[[Obj], Any] | None = None,
        on_update: Callable[[Obj, Obj], Any] | None = None,
        on_delete: Callable[[Obj], Any] | None = None,
    ) -> None:
        """Register callbacks: `on_add(obj)`, `on_update(old, new)`, `on_delete(obj)`. A handler
        added after objects are cached first gets `on_add` for each of them (client-go)."""
        handler = _Handler(on_add, on_update, on_delete)
        self._handlers.append(handler)
        if on_add is not None:
            for obj in list(self._cache.values()):
                self._call(on_add, obj)

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s: event handler %r failed", self.name, fn)

    def _notify_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- cache writes ------------------------------------------------------------------------

    def _store(self, key: str, version: str, obj: Obj) -> Obj | None:
        old = self._cache.get(key)
        if old is not None:
            for name in self._indexers:
                self._unindex_one(name, key)
        self._cache[key] = obj
        self._versions[key] = version
        for name in self._indexers:
            self._index_one(name, key, obj)
        return old

    def _remove(self, key: str) -> Obj | None:
        old = self._cache.pop(key, None)
        self._versions.pop(key, None)
        if old is not None:
            for name in self._indexers:
                self._unindex_one(name, key)
        return old

    def _prepare(self, raw: Obj) -> tuple[str, str, Obj] | None:
        """(key, resourceVersion, transformed object), or None when the transform failed."""
        raw.setdefault("kind", self.resource.kind)
        raw.setdefault("apiVersion", self.resource.api_version)
        key = object_key(raw)
        version = str((raw.get("metadata") or {}).get("resourceVersion") or "")
        if self.transform is None:
            return key, version, raw
        try:
            return key, version, self.transform(raw)
        except Exception:
            log.exception("%s: transform failed on %s; object skipped", self.name, key)
            return None

    def _apply(self, event: WatchEvent) -> None:
        """Apply one watch event to the cache, then to the handlers."""
        if event.type == "BOOKMARK":
            pass
        elif event.type in ("ADDED", "MODIFIED"):
            prepared = self._prepare(event.object)
            if prepared is not None:
                key, version, obj = prepared
                old = self._store(key, version, obj)
                if old is None:
                    self._notify_add(obj)
                else:
                    self._notify_update(old, obj)
        elif event.type == "DELETED":
            prepared = self._prepare(event.object)
            key = object_key(event.object)
            old = self._remove(key)
            if old is not None:
                self._notify_delete(prepared[2] if prepared is not None else old)
        else:
            log.warning("%s: ignoring watch event of unknown type %r", self.name, event.type)
        if event.resource_version:
            self.resource_version = event.resource_version
        self.last_event_time = time.time()

    def _replace(self, items: Iterable[tuple[str, str, Obj] | None]) -> None:
        """Make the cache equal to a fresh List (its items through `_prepare`), delivering the
        difference to the handlers."""
        fresh: dict[str, tuple[str, Obj]] = {}
        for prepared in items:
            if prepared is not None:
                key, version, obj = prepared
                fresh[key] = (version, obj)
        for key, (version, obj) in fresh.items():
            if key in self._cache and self._versions.get(key) == version and version:
                continue
            old = self._store(key, version, obj)
            if old is None:
                self._notify_add(obj)
            else:
                self._notify_update(old, obj)
        for key in [k for k in self._cache if k not in fresh]:
            old = self._remove(key)
            if old is not None:
                self._notify_delete(old)

    # -- the loop ----------------------------------------------------------------------------

    async def _list(self) -> None:
        result = await self.client.list_all(
            self.resource, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, limit=PAGE_SIZE, each=self._prepare,
        )  # each page is transformed as it arrives: the raw List is never held whole
        self.list_count += 1
        self._replace(result.get("items") or [])
        self.resource_version = str((result.get("metadata") or {}).get("resourceVersion") or "")
        self.connected = True
        self.last_sync_time = time.time()
        self._synced.set()

    async def _watch(self) -> None:
        """One watch, from `resource_version` until the server ends it; raises on failure."""
        timeout = random.randint(*self.watch_timeout_range)
        self.watch_count += 1

        def opened() -> None:
            self.connected = True

        async for event in self.client.watch(
            self.resource, self.namespace, resource_version=self.resource_version or None,
            label_selector=self.label_selector, field_selector=self.field_selector,
            timeout_seconds=timeout, allow_bookmarks=True, on_open=opened,
        ):
            self._apply(event)

    async def run(self) -> None:
        """List and watch until cancelled (see the module docstring for the failure rules)."""
        backoff = Backoff()
        need_list = True
        try:
            while True:
                started = time.monotonic()
                try:
                    if need_list:
                        await self._list()
                        need_list = False
                        backoff.reset()
                    watch_started = time.monotonic()
                    await self._watch()
                    # server-side timeout: watch again from the last version, at once unless
                    # the server keeps ending watches immediately (then back off: no hot loop)
                    if time.monotonic() - watch_started < HEALTHY_AFTER:
                        await asyncio.sleep(backoff.next())
                    else:
                        backoff.reset()
                    continue
                except errors.Gone:
                    log.info("%s: resourceVersion %s expired; relisting", self.name,
                             self.resource_version)
                    need_list = True
                    if time.monotonic() - started < HEALTHY_AFTER:
                        await asyncio.sleep(backoff.next())
                    continue
                except errors.TransportError as exc:
                    log.warning("%s: API unreachable (%s); cache kept, retrying", self.name, exc)
                except errors.APIError as exc:
                    log.warning("%s: %s; relisting", self.name, exc)
                    need_list = True
                self.connected = False
                if time.monotonic() - started >= HEALTHY_AFTER:
                    backoff.reset()
                await asyncio.sleep(backoff.next())
        finally:
            self.connected = False

    def start(self) -> asyncio.Task[None]:
        """Run in a background task (returned; cancel it to stop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)
        return self._task

    async def stop(self) -> None:
        """Cancel the task started by `start()` and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


__all__ = ["Backoff", "Informer"]
