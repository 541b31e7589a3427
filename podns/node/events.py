"""Event recorder: what the agent did to a pod, as core/v1 Events (`kubectl describe pod`).

Recording never blocks and never fails the caller: events go into a bounded queue that one task
drains; when the API refuses or the queue is full, the event is dropped (events are advisory, as
in Kubernetes). A repeat of the same (object, reason, message) within `DEDUP_WINDOW` is dropped
too, so a probe failing every second does not flood the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import EVENTS

log = logging.getLogger(__name__)
Obj = dict[str, Any]

QUEUE_SIZE = 1000
#: identical events within this many seconds are sent once
DEDUP_WINDOW = 60.0


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class EventRecorder:
    """Queue Events for objects; `run()` sends them."""

    def __init__(self, client: Client, *, component: str, host: str) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(QUEUE_SIZE)
        self._recent: dict[tuple[str, str, str, str], float] = {}
        self._task: asyncio.Task[None] | None = None

    def record(self, obj: Obj, etype: str, reason: str, message: str, field_path: str = "") -> None:
        meta = obj.get("metadata", {})
        key = (str(meta.get("uid", "")), field_path, reason, message)
        now = time.monotonic()
        if now - self._recent.get(key, -DEDUP_WINDOW) < DEDUP_WINDOW:
            return
        self._recent[key] = now
        if len(self._recent) > 4 * QUEUE_SIZE:
            self._recent = {k: v for k, v in self._recent.items() if now - v < DEDUP_WINDOW}
        ns = meta.get("namespace", "default")
        stamp = _now()
        involved: Obj = {"kind": obj.get("kind", "Pod"), "apiVersion": obj.get("apiVersion", "v1"),
                         "namespace": ns, "name": meta.get("name", ""), "uid": meta.get("uid", "")}
        if field_path:
            involved["fieldPath"] = field_path
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', '')}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": involved, "reason": reason, "message": message[:1024], "type": etype,
            "source": {"component": self.component, "host": self.host},
            "firstTimestamp": stamp[:19] + "Z", "lastTimestamp": stamp[:19] + "Z", "eventTime": None,
            "count": 1, "reportingComponent": self.component, "reportingInstance": self.host,
        }
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(event)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.client.create(EVENTS, event)
            except errors.KubeError as exc:
                log.debug("event %s dropped: %s", event["reason"], exc)
