"""`SyncBalancer`: the balancer for threaded code.

The balancer and its source run on an event loop in one daemon thread; `pick()` and
`endpoint()` read the pool directly (they are lock-protected and never block), and
`connection()` opens a plain blocking socket in the caller's thread with the same retry and
ejection rules as the async balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from podns.lb.balancer import CONNECT_ERRORS, Attempts, Balancer
from podns.lb.endpoint import Endpoint

T = TypeVar("T")


class SyncBalancer:
    """Same arguments as `Balancer`; use as a context manager or call `start()`/`close()`."""

    def __init__(self, name: str, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._name = name
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"podns-lb-{name}", daemon=True)
        self._thread.start()
        self.balancer: Balancer = self._run(self._make())

    async def _make(self) -> Balancer:
        return Balancer(self._name, **self._kwargs)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> SyncBalancer:
        self._run(self.balancer.start())
        return self

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._run(self.balancer.close(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> SyncBalancer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.balancer.endpoints

    def pick(self, key: str | None = None) -> Endpoint:
        return self.balancer.pick(key)

    def endpoint(self, name: str) -> Endpoint:
        return self.balancer.endpoint(name)

    def stats(self) -> dict[str, Any]:
        return self.balancer.stats()

    def report_failure(self, ep: Endpoint) -> None:
        self._loop.call_soon_threadsafe(self.balancer.report_failure, ep)

    def report_success(self, ep: Endpoint) -> None:
        self.balancer.report_success(ep)

    def wait_for(self, predicate: Callable[[list[Endpoint]], bool], timeout: float) -> list[Endpoint]:
        return self._run(self.balancer.wait_for(predicate, timeout))

    @contextlib.contextmanager
    def connection(
        self, key: str | None = None, *, endpoint: str | None = None, timeout: float | None = None
    ) -> Iterator[socket.socket]:
        """A connected blocking socket to a chosen pod; see `Balancer.connection`."""
        bal = self.balancer
        timeout = bal.connect_timeout if timeout is None else timeout
        attempts = Attempts(bal, key=key, endpoint=endpoint, report=self.report_failure)
        for ep in attempts:
            try:
                sock = socket.create_connection((ep.address, ep.port), timeout=timeout)
            except CONNECT_ERRORS as exc:
                attempts.failed(ep, exc)
                continue
            bal.report_success(ep)
            with bal.track(ep), sock:
                yield sock
            return
        raise attempts.error("connecting to")

    def call(self, fn: Callable[[Endpoint], T], *, key: str | None = None, idempotent: bool = True) -> T:
        """Run blocking `fn(endpoint)`, retrying connection-level failures elsewhere."""
        bal = self.balancer
        attempts = Attempts(bal, key=key, tries=None if idempotent else 1, report=self.report_failure)
        for ep in attempts:
            with bal.track(ep):
                try:
                    result = fn(ep)
                except CONNECT_ERRORS as exc:
                    attempts.failed(ep, exc)
                    continue
            bal.report_success(ep)
            return result
        raise attempts.error("calling")
