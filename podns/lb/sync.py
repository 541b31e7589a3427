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

from podns.lb.balancer import CONNECT_ERRORS, Balancer
from podns.lb.endpoint import Endpoint
from podns.lb.errors import ConnectError, NoEndpoints

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
        tried: set[str] = set()
        attempts: list[tuple[object, BaseException]] = []
        for _ in range(bal.attempts):
            ep = bal.endpoint(endpoint) if endpoint else bal._pick_excluding(tried, key)
            if ep is None:
                break
            try:
                sock = socket.create_connection((ep.address, ep.port), timeout=timeout)
            except CONNECT_ERRORS as exc:
                attempts.append((ep, exc))
                tried.add(ep.key)
                self.report_failure(ep)
                if endpoint:
                    break
                continue
            bal.report_success(ep)
            with bal.track(ep), sock:
                yield sock
            return
        if not attempts:
            raise NoEndpoints(bal._why_none())
        detail = "; ".join(f"{ep}: {exc!r}" for ep, exc in attempts)
        raise ConnectError(f"connecting to {bal.target.fqdn.rstrip('.')} failed: {detail}", attempts)

    def call(self, fn: Callable[[Endpoint], T], *, key: str | None = None, idempotent: bool = True) -> T:
        """Run blocking `fn(endpoint)`, retrying connection-level failures elsewhere."""
        bal = self.balancer
        tried: set[str] = set()
        attempts: list[tuple[object, BaseException]] = []
        for _ in range(bal.attempts if idempotent else 1):
            ep = bal._pick_excluding(tried, key)
            if ep is None:
                break
            with bal.track(ep):
                try:
                    result = fn(ep)
                except CONNECT_ERRORS as exc:
                    attempts.append((ep, exc))
                    tried.add(ep.key)
                    self.report_failure(ep)
                    continue
            bal.report_success(ep)
            return result
        if not attempts:
            raise NoEndpoints(bal._why_none())
        detail = "; ".join(f"{ep}: {exc!r}" for ep, exc in attempts)
        raise ConnectError(f"calling {bal.target.fqdn.rstrip('.')} failed: {detail}", attempts)
