"""The controllers' work queue: deduplicated keys, one worker per key, rate-limited retries.

Why a queue and not a channel (Kubernetes' endpointslice controller says the same): a key
added ten times while waiting is processed once (dedup); a key being processed is never handed
to a second worker, and if it is added again meanwhile it is processed once more after
`done(key)` (so no change is lost and no two workers race on one object); failing keys come
back after a per-key exponential back-off instead of spinning.

Semantics follow client-go's `workqueue` (queue.go, delaying_queue.go, default_rate_limiters.go)
with asyncio instead of goroutines. `run_workers` is the STYLE.md worker loop: get a key,
`sync(key)`, on success `forget`, on failure `add_rate_limited` until `max_retries`, then drop
it; `done` always.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

#: per-key back-off of add_rate_limited: first delay and cap in seconds (client-go's default
#: controller rate limiter: 5 ms doubling up to 1000 s)
BASE_DELAY = 0.005
MAX_DELAY = 1000.0
#: retries before run_workers drops a key: 5 ms * 2^15 ~ 164 s, the last retry after ~3 min
#: of failures (Kubernetes controllers use 15 as well)
MAX_RETRIES = 15


class ExponentialBackoff:
    """Per-key exponential back-off: `when(key)` = base * 2^failures, capped at `maximum`."""

    def __init__(self, base: float = BASE_DELAY, maximum: float = MAX_DELAY) -> None:
        self.base = base
        self.maximum = maximum
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        """The delay before the next retry of `key` (and count one more failure)."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        if n >= 64:  # 2**64 * base overflows any sane cap
            return self.maximum
        return float(min(self.base * (2**n), self.maximum))

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)


class WorkQueue:
    """An asyncio work queue of hashable keys (usually "ns/name" strings)."""

    def __init__(self, *, name: str = "workqueue", rate_limiter: ExponentialBackoff | None = None
                 ) -> None:
        self.name = name
        self.rate_limiter = rate_limiter or ExponentialBackoff()
        self._queue: deque[Hashable] = deque()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._waiting: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}
        self._getters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def _wake(self, everyone: bool = False) -> None:
        """Wake one waiting `get` (or all of them): it re-checks the queue itself."""
        while self._getters:
            fut = self._getters.popleft()
            if not fut.done():
                fut.set_result(None)
                if not everyone:
                    return

    def add(self, key: Hashable) -> None:
        """Queue `key` unless it is already waiting; a key being processed is queued again
        after its `done`. Ignored after shutdown."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return
        self._queue.append(key)
        self._wake()

    def add_after(self, key: Hashable, delay: float) -> None:
        """Queue `key` after `delay` seconds (at once when <= 0). Of several pending delayed
        adds of one key, the earliest wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        handle = loop.call_at(when, self._fire, key)
        self._waiting[key] = (when, handle)

    def _fire(self, key: Hashable) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: Hashable) -> None:
        """Queue `key` after its back-off (5 ms, 10 ms, 20 ms ... up to 1000 s)."""
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: Hashable) -> None:
        """Reset the back-off of `key` (after a successful sync)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        """How many times `key` was re-queued with `add_rate_limited` since its last forget."""
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> Hashable | None:
        """The next key to process (waits for one); None once the queue is shut down and
        empty. The caller must call `done(key)` when finished with it."""
        while not self._queue and not self._shutting_down:
            fut = asyncio.get_running_loop().create_future()
            self._getters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # pass the wake-up on to another worker
                raise
        if not self._queue:
            self._wake()  # shut down: let the next waiter see it too
            return None
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        if self._queue:
            self._wake()
        return key

    def done(self, key: Hashable) -> None:
        """Mark `key` processed; if it was added meanwhile, it is queued again now."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Stop accepting keys; pending delayed adds are dropped; `get` returns None to every
        waiting worker once the queue is drained."""
        self._shutting_down = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._wake(everyone=True)

    def __len__(self) -> int:
        """Keys ready to be handed out (not those being processed or waiting for a delay)."""
        return len(self._queue)


ErrorHandler = Callable[[Hashable, BaseException, bool], None]


def _log_error(key: Hashable, exc: BaseException, retrying: bool) -> None:
    if retrying:
        log.warning("syncing %s failed (will retry): %s", key, exc)
    else:
        log.error("syncing %s failed; dropping it after %d retries: %s", key, MAX_RETRIES, exc)


async def _worker(
    queue: WorkQueue,
    sync: Callable[[Hashable], Awaitable[object]],
    handle_error: ErrorHandler,
    max_retries: int | None,
) -> None:
    while True:
        key = await queue.get()
        if key is None:
            return
        try:
            await sync(key)
        except asyncio.CancelledError:
            queue.done(key)
            raise
        except Exception as exc:
            retrying = max_retries is None or queue.num_requeues(key) < max_retries
            try:
                handle_error(key, exc, retrying)
            except Exception:
                log.exception("error handler failed for %s", key)
            if retrying:
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
        else:
            queue.forget(key)
        queue.done(key)


async def run_workers(
    queue: WorkQueue,
    sync: Callable[[Hashable], Awaitable[object]],
    n: int = 1,
    handle_error: ErrorHandler | None = None,
    *,
    max_retries: int | None = MAX_RETRIES,
) -> None:
    """Run `n` workers calling `sync(key)` until the queue shuts down (or this is cancelled).

    A `sync` that raises is retried with the key's back-off, up to `max_retries` times (None:
    for ever, the back-off capped at MAX_DELAY), then the key is dropped (until something adds
    it again). `handle_error(key, exc, retrying)` is
    called on every failure (default: log once, here, with the key).
    """
    handler = handle_error or _log_error
    tasks = [
        asyncio.create_task(_worker(queue, sync, handler, max_retries),
                            name=f"{queue.name}-worker-{i}")
        for i in range(n)
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["BASE_DELAY", "MAX_DELAY", "MAX_RETRIES", "ExponentialBackoff", "WorkQueue",
           "run_workers"]
