"""Event TTL: the API server deletes core/v1 Events older than `--event-ttl` (default 1h).

kube-apiserver stores Events with an etcd lease of `--event-ttl`, so a cluster's event history
does not grow without bound. podns does the same with a periodic background sweep: an Event
whose latest timestamp (`lastTimestamp`, `eventTime`, `series.lastObservedTime` or
`metadata.creationTimestamp`) is older than the TTL is deleted from the store. The sweep reads
the store in pages and yields to the event loop between them, so requests are not stalled; the
deletion is conditional on the resourceVersion read, so an Event updated meanwhile (a repeated
event bumps `count` and `lastTimestamp`) survives, and several API servers over one etcd may
sweep at once (the loser's delete is a harmless Conflict/NotFound).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from podns.objects.times import parse_time
from podns.store import errors as store_errors
from podns.store.interface import Store

log = logging.getLogger(__name__)

#: kube-apiserver's default --event-ttl, seconds
DEFAULT_EVENT_TTL = 3600.0
#: store prefix of core/v1 Events (`events/<namespace>/<name>`)
EVENTS_PREFIX = "events/"
#: Events read per store page during a sweep
PAGE = 500
#: bounds of the pause between sweeps (a tenth of the TTL): short TTLs expire promptly,
#: long ones do not make the server list every Event more than once a minute
MIN_INTERVAL = 0.2
MAX_INTERVAL = 60.0

Obj = dict[str, Any]


def last_seen(event: Obj) -> float | None:
    """The latest of the Event's timestamps as a Unix time; None when it has none readable."""
    md = event.get("metadata") or {}
    series = found if isinstance(found := event.get("series"), dict) else {}
    latest: float | None = None
    for value in (event.get("lastTimestamp"), event.get("eventTime"),
                  series.get("lastObservedTime"), md.get("creationTimestamp")):
        ts = parse_time(value)
        if ts is None:
            continue
        latest = ts if latest is None else max(latest, ts)
    return latest


def sweep_interval(ttl: float) -> float:
    """Seconds between sweeps for a TTL of `ttl` seconds."""
    return min(max(ttl / 10, MIN_INTERVAL), MAX_INTERVAL)


async def sweep(store: Store, ttl: float, now: float | None = None) -> int:
    """Delete the Events older than `ttl` seconds (at Unix time `now`); returns how many."""
    cutoff = (time.time() if now is None else now) - ttl
    deleted = 0
    start_after: str | None = None
    at_rv: int | None = None
    while True:
        page = await store.list(EVENTS_PREFIX, limit=PAGE, start_after=start_after, at_rv=at_rv)
        at_rv = page.rv
        for event in page.items:
            seen = last_seen(event)
            if seen is None or seen >= cutoff:
                continue
            md = event.get("metadata") or {}
            key = f"{EVENTS_PREFIX}{md.get('namespace')}/{md.get('name')}"
            try:
                await store.delete(key, expected_rv=int(md.get("resourceVersion") or 0) or None)
                deleted += 1
            except (store_errors.NotFound, store_errors.Conflict):
                pass  # deleted or updated meanwhile (by a client or another API server)
        if page.continue_key is None:
            return deleted
        start_after = page.continue_key
        await asyncio.sleep(0)  # let requests run between pages


class EventReaper:
    """Runs `sweep` every `sweep_interval(ttl)` seconds until stopped; ttl <= 0 disables it."""

    def __init__(self, store: Store, ttl: float = DEFAULT_EVENT_TTL) -> None:
        self.store = store
        self.ttl = ttl
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.ttl > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-ttl")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        interval = sweep_interval(self.ttl)
        while True:
            await asyncio.sleep(interval)
            try:
                n = await sweep(self.store, self.ttl)
                if n:
                    log.info("event TTL: deleted %d events older than %gs", n, self.ttl)
            except store_errors.StoreError as exc:  # store unavailable: try again next round
                log.debug("event TTL sweep failed: %s", exc)
            except Exception:  # never let one bad sweep end the reaper
                log.exception("event TTL sweep failed")
