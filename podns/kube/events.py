"""The event recorder: core/v1 Events about what a component did, for `kubectl describe`.

One recorder for every component (client-go's `tools/record`): controllers, the scheduler and
the node agent call `EventRecorder.event(obj, type, reason, message)`, which never blocks and
never raises. Like client-go's `EventCorrelator`, repeats aggregate: the same (object, field
path, type, reason, message) within `DEDUP_WINDOW` seconds bumps `count` and `lastTimestamp` of
the existing Event (one PATCH) instead of creating another. Writes of one aggregated Event are
coalesced: a repeat that comes while its write is pending, or less than `MIN_REWRITE` seconds
after the last one, only raises the count that the next write carries, so a probe failing every
second costs at most one write per `MIN_REWRITE` and the final count still reaches the API.

Events are best-effort by design (Kubernetes drops them under pressure too): a full queue or a
failed write is logged at debug level and forgotten, so recording can never stall or crash its
caller. Reasons are CamelCase pairs (STYLE.md 2.3): `SuccessfulCreate` / `FailedCreate`,
`Scheduled` / `FailedScheduling`, `Started` / `BackOff`, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import EVENTS
from podns.objects import join_key, meta_of, name_of, namespace_of, now_rfc3339

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
#: seconds within which an identical event is aggregated into the existing Event (client-go's
#: aggregation interval is 10 minutes too)
DEDUP_WINDOW = 600.0
#: the shortest time between two writes of one aggregated Event: repeats in between only raise
#: the count the next write carries
MIN_REWRITE = 10.0
#: keys waiting to be written; beyond this new events are dropped (best-effort, never blocks)
QUEUE_SIZE = 1000
#: aggregated Events remembered (client-go's LRU cache holds 4096 as well)
CACHE_SIZE = 4096
#: Event messages are cut here (the API's limit on events.k8s.io notes)
MAX_MESSAGE = 1024

#: (involved object, field path, type, reason, message)
_Key = tuple[str, str, str, str, str]


@dataclass(slots=True)
class _Series:
    """One aggregated Event: what the API has and what the next write must carry."""

    body: dict[str, Any]
    namespace: str
    first: float
    last: float
    count: int = 1
    name: str = ""  # the Event's name once created
    last_write: float = float("-inf")
    pending: bool = False  # queued, or a timer will queue it
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class EventRecorder:
    """Writes Events as `component` (`source.component`, `reportingController`) from `host`
    (`source.host`, for node agents) and `instance` (`reportingInstance`, default the host or the
    component)."""

    def __init__(self, client: Client, component: str, *, host: str = "", instance: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance or host or component
        self._clock = clock
        self._queue: asyncio.Queue[_Key] = asyncio.Queue(QUEUE_SIZE)
        self._series: OrderedDict[_Key, _Series] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        #: Events created or patched so far
        self.written = 0

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *,
              field_path: str = "") -> None:
        """Record an event about `obj` (with its kind, apiVersion and metadata); `field_path`
        names a part of it (`spec.containers{app}`, as the kubelet does)."""
        if not self._ensure_started():
            return  # no event loop: nothing could be written anyway
        md = meta_of(obj)
        ident = str(md.get("uid") or "") or join_key(namespace_of(obj), name_of(obj))
        key = (ident, field_path, type_, reason, message)
        now = self._clock()
        series = self._series.get(key)
        if series is None or now - series.last >= DEDUP_WINDOW:
            series = _Series(self._body(obj, type_, reason, message, field_path),
                             namespace_of(obj) or "default", first=now, last=now)
            self._series[key] = series
            while len(self._series) > CACHE_SIZE:
                _, old = self._series.popitem(last=False)
                if old.timer is not None:
                    old.timer.cancel()
        else:
            series.count += 1
            series.last = now
        self._series.move_to_end(key)
        self._schedule(key, series, now)

    def start(self) -> None:
        """Start the writer task now (`event` starts it on first use otherwise)."""
        self._ensure_started()

    async def flush(self) -> None:
        """Write every pending Event now (timers included) and wait until they are written or
        dropped."""
        for key, series in list(self._series.items()):
            if series.timer is not None:
                series.timer.cancel()
                series.timer = None
                self._put(key, series)
        await self._queue.join()

    async def stop(self) -> None:
        for series in self._series.values():
            if series.timer is not None:
                series.timer.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- internals -------------------------------------------------------------------------------

    def _ensure_started(self) -> bool:
        if self._task is None or self._task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return False
            self._task = loop.create_task(self._run(), name=f"event-recorder-{self.component}")
        return True

    def _schedule(self, key: _Key, series: _Series, now: float) -> None:
        if series.pending:
            return  # the pending write will carry this repeat's count
        series.pending = True
        delay = series.last_write + MIN_REWRITE - now
        if delay <= 0:
            self._put(key, series)
        else:
            series.timer = asyncio.get_running_loop().call_later(delay, self._put, key, series)

    def _put(self, key: _Key, series: _Series) -> None:
        series.timer = None
        try:
            self._queue.put_nowait(key)
        except asyncio.QueueFull:
            series.pending = False
            log.debug("event queue full; dropped %s %s", key[2], key[3])

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            series = self._series.get(key)
            try:
                if series is not None and series.pending:
                    series.pending = False
                    await self._write(series)
                    self.written += 1
            except errors.KubeError as exc:
                log.debug("writing event %s %s failed: %s", key[3], key[0], exc)
            except Exception:
                log.exception("writing event %s %s failed", key[3], key[0])
            finally:
                self._queue.task_done()

    async def _write(self, series: _Series) -> None:
        series.last_write = self._clock()
        count, last = series.count, now_rfc3339(series.last)
        if series.name:
            try:
                await self.client.patch(EVENTS, series.name, {"count": count, "lastTimestamp": last},
                                        series.namespace)
                return
            except errors.NotFound:
                pass  # deleted meanwhile (TTL): start a new one
        body = {**series.body, "count": count, "firstTimestamp": now_rfc3339(series.first),
                "lastTimestamp": last,
                "metadata": {**series.body["metadata"], "name": f"{series.body['involvedObject']['name']}"
                                                                f".{time.time_ns():x}"}}
        created = await self.client.create(EVENTS, body, series.namespace)
        series.name = name_of(created) or body["metadata"]["name"]

    def _body(self, obj: Mapping[str, Any], type_: str, reason: str, message: str,
              field_path: str) -> dict[str, Any]:
        md = meta_of(obj)
        involved: dict[str, Any] = {
            "kind": obj.get("kind", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "name": name_of(obj),
            "namespace": namespace_of(obj),
            "uid": str(md.get("uid", "")),
            "resourceVersion": str(md.get("resourceVersion", "")),
        }
        if field_path:
            involved["fieldPath"] = field_path
        source = {"component": self.component, **({"host": self.host} if self.host else {})}
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": namespace_of(obj) or "default"},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "type": type_,
            "source": source,
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
        }
