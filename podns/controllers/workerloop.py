"""The worker loop every controller runs, and the one retry policy.

Owns what every podns controller has in common (STYLE.md 2.7 #1-#2, Kubernetes'
`processNextWorkItem` / `handleErr`):

- `Controller`: event handlers only enqueue keys; workers run `sync(key)`; `handle_error` is the
  only place that logs a failed sync. A `sync` raising means "retry with back-off"
  (5 ms doubling, up to `max_retries` times, then dropped until the next change; controllers
  whose upstream counterpart requeues without limit set `max_retries = None`); returning
  normally means done (also for "gone" and for non-transient bad input, which controllers
  report as events instead). A `sync` that must look again later (minReadySeconds) calls
  `self.queue.add_after(key, seconds)`.

Controllers never mutate cached objects; they copy before writing (see `podns.objects.meta`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from typing import Any

from podns.kube import errors
from podns.kube.workqueue import MAX_RETRIES, WorkQueue, run_workers

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class StaleCache(Exception):
    """The informer cache is older than our own last write: retried with back-off like a failure,
    but not reported as one."""


class Controller:
    """Base of every controller: a work queue of keys, `sync(key)` run by workers.

    Subclasses register informer handlers in `__init__` (enqueue only) and implement `sync`.
    """

    #: the controller's name: queue name, log prefix, event source
    name = "controller"
    #: parallel workers; one key is never processed by two at once
    workers = 2
    #: failed syncs of one key before it is dropped until it changes; None retries for ever
    #: (back-off capped at the queue's maximum), as Kubernetes' StatefulSet, ReplicaSet,
    #: DaemonSet, Job and CronJob controllers do; Deployment and EndpointSlice drop after 15
    max_retries: int | None = MAX_RETRIES

    def __init__(self) -> None:
        self.queue = WorkQueue(name=self.name)
        #: completed syncs and failed syncs, for tests and benchmarks
        self.syncs = 0
        self.failures = 0

    def enqueue(self, key: Hashable) -> None:
        self.queue.add(key)

    async def sync(self, key: Hashable) -> None:  # pragma: no cover - abstract
        """Bring the object named by `key` to its desired state; raise to be retried."""
        raise NotImplementedError

    async def _sync(self, key: Hashable) -> None:
        await self.sync(key)
        self.syncs += 1

    def handle_error(self, key: Hashable, exc: BaseException, retrying: bool) -> None:
        """The one place a failed sync is reported: conflicts are expected under concurrent
        writers and logged at debug level, as is a cache that has not caught up with our own
        writes yet (`StaleCache`: retried after 5 ms, 10 ms, ... like any failure, so a cache
        that never catches up cannot spin); everything else once, with the key."""
        parts = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        if all(isinstance(e, StaleCache) for e in parts):
            log.debug("%s: %s: cache behind our writes, retrying: %s", self.name, key, exc)
            return
        self.failures += 1
        if all(isinstance(e, StaleCache | errors.Conflict) for e in parts):
            log.debug("%s: %s: conflict, retrying: %s", self.name, key, exc)
        elif retrying:
            log.warning("%s: syncing %s failed (retrying): %s", self.name, key, exc)
        else:
            log.error("%s: syncing %s failed %d times; dropped until it changes: %s",
                      self.name, key, self.max_retries, exc)

    async def run(self, workers: int | None = None) -> None:
        """Run workers until cancelled (the queue is shut down on the way out)."""
        try:
            await run_workers(self.queue, self._sync, workers or self.workers, self.handle_error,
                              max_retries=self.max_retries)
        finally:
            self.queue.shutdown()


async def apply_all(writes: list[Any]) -> None:
    """Await every write coroutine, collecting failures into one ExceptionGroup (Kubernetes
    `NewAggregate`) so one failed write does not hide or stop the others. Cancellation (and any
    other BaseException that is not an Exception) is not a failed write: it is raised as is."""
    results = await asyncio.gather(*writes, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, Exception):
            raise r
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise ExceptionGroup(f"{len(failed)} of {len(results)} writes failed", failed)
