"""The event recorder: core/v1 Events about what controllers do, for `kubectl describe`.

`EventRecorder.event(obj, type, reason, message)` never blocks and never raises: it queues the
event and a background task writes it. Like client-go's recorder it aggregates repeats: the same
(object, type, reason, message) within `DEDUP_WINDOW` seconds bumps `count` and `lastTimestamp`
of the existing Event (one PATCH) instead of creating another. Events are best-effort by design
(Kubernetes drops them under pressure too): a full queue or a failed write is logged at debug
level and forgotten, so recording can never stall or crash a controller.

Reasons are CamelCase pairs (STYLE.md 2.3): `SuccessfulCreate` / `FailedCreate`,
`SuccessfulDelete` / `FailedDelete`, `Scheduled` / `FailedScheduling`, ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import EVENTS
from podns.objects import meta_of, name_of, namespace_of, now_rfc3339

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
#: seconds within which an identical event is aggregated into the existing one
DEDUP_WINDOW = 600.0
#: events waiting to be written; beyond this new ones are dropped (best-effort, never blocks)
QUEUE_SIZE = 1000
#: remembered recent events for aggregation
CACHE_SIZE = 4096


class EventRecorder:
    """Writes Events as `component` (the `source.component` / `reportingController`)."""

    def __init__(self, client: Client, component: str, *, instance: str = "") -> None:
        self.client = client
        self.component = component
        self.instance = instance or component
        self._queue: asyncio.Queue[tuple[Mapping[str, Any], str, str, str]] = asyncio.Queue(QUEUE_SIZE)
        self._recent: OrderedDict[tuple[str, str, str, str], tuple[str, str, int, float]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        """Record an event about `obj` (a full object with kind/apiVersion/metadata)."""
        if self._task is None or self._task.done():
            try:
                self._task = asyncio.get_running_loop().create_task(self._run(), name="event-recorder")
            except RuntimeError:
                return  # no loop: nothing can be written anyway
        try:
            self._queue.put_nowait((obj, type_, reason, message))
        except asyncio.QueueFull:
            log.debug("event queue full; dropped %s %s for %s", type_, reason, name_of(obj))

    async def flush(self) -> None:
        """Wait until every queued event has been written (or dropped)."""
        await self._queue.join()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
                self.written += 1
            except errors.KubeError as exc:
                log.debug("writing event %s for %s failed: %s", item[2], name_of(item[0]), exc)
            except Exception:
                log.exception("writing event %s for %s failed", item[2], name_of(item[0]))
            finally:
                self._queue.task_done()

    async def _write(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        ns = namespace_of(obj) or "default"
        uid = str(meta_of(obj).get("uid", ""))
        key = (uid or f"{ns}/{name_of(obj)}", type_, reason, message)
        now = time.time()
        stamp = now_rfc3339(now)
        seen = self._recent.get(key)
        if seen is not None and now - seen[3] < DEDUP_WINDOW:
            ev_ns, ev_name, count, _ = seen
            try:
                await self.client.patch(EVENTS, ev_name, {"count": count + 1, "lastTimestamp": stamp}, ev_ns)
                self._remember(key, (ev_ns, ev_name, count + 1, now))
                return
            except errors.NotFound:
                pass
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name_of(obj)}.{time.time_ns():x}", "namespace": ns},
            "involvedObject": {
                "kind": obj.get("kind", ""),
                "apiVersion": obj.get("apiVersion", ""),
                "name": name_of(obj),
                "namespace": namespace_of(obj),
                "uid": uid,
                "resourceVersion": str(meta_of(obj).get("resourceVersion", "")),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        created = await self.client.create(EVENTS, body, ns)
        self._remember(key, (ns, name_of(created) or body["metadata"]["name"], 1, now))

    def _remember(self, key: tuple[str, str, str, str], value: tuple[str, str, int, float]) -> None:
        self._recent[key] = value
        self._recent.move_to_end(key)
        while len(self._recent) > CACHE_SIZE:
            self._recent.popitem(last=False)
