"""The pool: a service's current endpoints, a policy to pick one, and health tracking.

`Balancer` is what applications hold. It starts a source (DNS or watch), keeps the endpoint
list the source pushes, and answers `pick()` from memory in microseconds. Health is passive
(connection failures reported by `connection()`, `call()` or `report_failure()` eject an
endpoint for a growing time) and optionally active (a periodic check). It never hands out an
ejected endpoint while a healthy one exists; when every usable endpoint is ejected it uses all
of them (panic mode) rather than failing every request. Terminating endpoints are drained: no
new picks, existing connections are left to finish.

All methods run on the event loop that started the balancer; `SyncBalancer` (podns.lb.syncbalancer)
wraps one for threaded code.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from podns.lb.endpoint import Endpoint
from podns.lb.errors import ConnectError, EndpointNotFound, LBError, NoEndpoints
from podns.lb.health import OutlierConfig, OutlierDetector
from podns.lb.policies import Policy, _hash64, make_policy, rendezvous
from podns.lb.sources.base import DEFAULT_ZONE, Source, Target
from podns.lb.sources.dns import DNS

T = TypeVar("T")

#: errors that mean "this endpoint did not take the work" (safe to retry elsewhere)
CONNECT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)


@dataclass(slots=True)
class Hooks:
    """Metrics callbacks; each is optional and must be cheap (called inline)."""

    on_pick: Callable[[Endpoint], None] | None = None
    on_eject: Callable[[Endpoint], None] | None = None
    on_readmit: Callable[[Endpoint], None] | None = None
    on_update: Callable[[list[Endpoint]], None] | None = None


@dataclass(frozen=True, slots=True)
class TCPCheck:
    """Active health check: an endpoint passes when a TCP connection opens within `timeout`."""

    interval: float = 2.0
    timeout: float = 1.0

    async def __call__(self, ep: Endpoint) -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(ep.address, ep.port), self.timeout)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


class Attempts:
    """Retry bookkeeping shared by every way of using endpoints (connections, calls, the httpx
    transports, the sync facade): iterate to get endpoints not tried yet, `failed()` each one
    that did not take the work, and raise `error()` when the iteration ends without success."""

    def __init__(
        self,
        pool: Balancer,
        *,
        key: str | None = None,
        endpoint: str | None = None,
        tries: int | None = None,
        report: Callable[[Endpoint], None] | None = None,
    ) -> None:
        self.pool = pool
        self.key = key
        self.endpoint = endpoint
        self.left = pool.attempts if tries is None else tries
        self.tried: set[str] = set()
        self.errors: list[tuple[object, BaseException]] = []
        self._report = report or pool.report_failure

    def __iter__(self) -> Iterator[Endpoint]:
        while self.left > 0:
            self.left -= 1
            if self.endpoint:
                ep: Endpoint | None = self.pool.endpoint(self.endpoint)
            else:
                ep = self.pool._pick_excluding(self.tried, self.key)
            if ep is None:
                return
            yield ep

    def failed(self, ep: Endpoint, exc: BaseException) -> None:
        """`ep` did not take the work: report it, and do not offer it again."""
        self.errors.append((ep, exc))
        self.tried.add(ep.key)
        self._report(ep)
        if self.endpoint:
            self.left = 0  # a named endpoint has no alternative

    def error(self, doing: str) -> LBError:
        """NoEndpoints when nothing could be tried, else ConnectError listing every attempt."""
        if not self.errors:
            return NoEndpoints(self.pool._why_none())
        detail = "; ".join(f"{ep}: {exc!r}" for ep, exc in self.errors)
        return ConnectError(f"{doing} {self.pool.target.fqdn.rstrip('.')} failed: {detail}", self.errors)


def default_source() -> Source:
    """DNS against the first nameserver of /etc/resolv.conf (inside a pod: the cluster DNS)."""
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    return DNS(server=parts[1])
    except OSError:
        pass
    return DNS(server="127.0.0.1:53")


class Balancer:
    """Client-side load balancer for one service port.

    *name*: the service (`db-service`, `db-service.default`, or the FQDN); *port*: a port name
    (SRV / slice port name), a number, or None; *policy*: `round_robin`, `random`,
    `least_outstanding`, `consistent_hash` or a Policy object; *source*: `DNS(...)`,
    `Watch(...)`, `Static(...)` (default: DNS via /etc/resolv.conf). Use as
    `async with Balancer(...) as pool:` or call `start()` / `close()`.
    """

    def __init__(
        self,
        name: str,
        *,
        port: int | str | None = None,
        policy: str | Policy = "round_robin",
        source: Source | None = None,
        namespace: str = "default",
        zone: str = DEFAULT_ZONE,
        connect_timeout: float = 2.0,
        attempts: int = 3,
        outlier: OutlierConfig | None = None,
        health_check: Callable[[Endpoint], Awaitable[bool]] | TCPCheck | None = None,
        health_interval: float | None = None,
        hooks: Hooks | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.target = Target(name=name, port=port, namespace=namespace, zone=zone)
        self.source: Source = source if source is not None else default_source()
        self.policy = make_policy(policy, rng)
        self.connect_timeout = connect_timeout
        self.attempts = max(1, attempts)
        self.hooks = hooks or Hooks()
        self.health_check = health_check
        self.health_interval: float = health_interval or float(getattr(health_check, "interval", 2.0))
        self._clock = clock
        self._detector = OutlierDetector(outlier or OutlierConfig(), clock)
        self._lock = threading.Lock()
        self._endpoints: list[Endpoint] = []
        self._reason: str | None = "not started"
        self._usable: list[Endpoint] = []
        self._eligible: list[Endpoint] = []
        self._eligible_hashes: list[int] = []
        self._eligible_until = 0.0
        self._dirty = True
        self._outstanding: Counter[str] = Counter()
        self._picks: Counter[str] = Counter()
        self._ejections = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        #: source refreshes asked for on ejection (kept: the loop holds tasks only weakly)
        self._refreshes: set[asyncio.Task[Any]] = set()

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> Balancer:
        """Resolve the service once (raises ResolutionError when that fails) and keep it current."""
        await self.source.start(self.target, self._update)
        if self.health_check is not None:
            checks = asyncio.create_task(self._active_checks(), name=f"lb-health:{self.target.name}")
            self._tasks.append(checks)
        return self

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        await self.source.close()

    async def __aenter__(self) -> Balancer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- membership ---------------------------------------------------------------------------

    def _update(self, endpoints: list[Endpoint], reason: str | None) -> None:
        with self._lock:
            self._endpoints = list(endpoints)
            self._reason = reason
            self._usable = [e for e in self._endpoints if e.usable]
            self._detector.forget({e.key for e in self._endpoints})
            self._dirty = True
        self._changed.set()
        if self.hooks.on_update:
            self.hooks.on_update(list(endpoints))

    @property
    def endpoints(self) -> list[Endpoint]:
        """Every endpoint the source reports, including not-ready and terminating ones."""
        return list(self._endpoints)

    async def wait_for(self, predicate: Callable[[list[Endpoint]], bool], timeout: float) -> list[Endpoint]:
        """Wait until the endpoint list satisfies `predicate`; TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while not predicate(self._endpoints):
                self._changed.clear()
                await self._changed.wait()
        return list(self._endpoints)

    # -- picking ------------------------------------------------------------------------------

    def _candidates(self) -> list[Endpoint]:
        now = self._clock()
        if self._dirty or now >= self._eligible_until:
            ejected = self._detector.ejected_keys()
            healthy = [e for e in self._usable if e.key not in ejected]
            # Panic mode: every usable endpoint ejected -> use them all rather than fail.
            self._eligible = healthy or list(self._usable)
            self._eligible_hashes = [_hash64(e.key) for e in self._eligible]
            self._eligible_until = self._detector_next_change(now)
            self._dirty = False
        return self._eligible

    def _detector_next_change(self, now: float) -> float:
        untils = [st.ejected_until for st in self._detector._states.values() if st.ejected_until > now]
        return min(untils) if untils else float("inf")

    def pick(self, key: str | None = None) -> Endpoint:
        """One endpoint for the next request: by the policy, or by consistent hashing on `key`.

        Raises NoEndpoints (with the reason: unknown service, none ready, all draining)."""
        with self._lock:
            cands = self._candidates()
            if not cands:
                raise NoEndpoints(self._why_none())
            if key is not None:
                ep = rendezvous(cands, key, self._eligible_hashes)
            else:
                ep = self.policy.pick(cands, self._outstanding)
            self._picks[ep.key] += 1
        if self.hooks.on_pick:
            self.hooks.on_pick(ep)
        return ep

    def _why_none(self) -> str:
        name = self.target.fqdn.rstrip(".")
        if self._endpoints:
            return f"{name}: all {len(self._endpoints)} endpoints are not ready or terminating"
        return f"{name}: {self._reason or 'no endpoints'}"

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint of one pod by its stable hostname (`db-0`) or its address.

        Raises EndpointNotFound when no such pod is in the pool, NoEndpoints when it is there
        but not ready or terminating."""
        for ep in self._endpoints:
            if ep.hostname == name or ep.address == name:
                if not ep.usable:
                    raise NoEndpoints(f"endpoint {name} of {self.target.fqdn.rstrip('.')} is not ready")
                return ep
        raise EndpointNotFound(f"no endpoint named {name!r} in {self.target.fqdn.rstrip('.')}")

    def _pick_excluding(self, tried: set[str], key: str | None) -> Endpoint | None:
        with self._lock:
            cands = [e for e in self._candidates() if e.key not in tried]
            if not cands:
                return None
            ep = rendezvous(cands, key) if key is not None else self.policy.pick(cands, self._outstanding)
            self._picks[ep.key] += 1
        if self.hooks.on_pick:
            self.hooks.on_pick(ep)
        return ep

    # -- health -------------------------------------------------------------------------------

    def report_success(self, ep: Endpoint) -> None:
        with self._lock:
            self._detector.record_success(ep.key)

    def report_failure(self, ep: Endpoint) -> None:
        """Count a failed attempt; consecutive failures eject the endpoint for a while."""
        with self._lock:
            ejected = self._detector.record_failure(ep.key)
            if ejected:
                self._ejections += 1
                self._dirty = True
        if ejected and self.hooks.on_eject:
            self.hooks.on_eject(ep)
        # The pod may be gone: ask the source for a fresh answer now rather than at TTL expiry.
        with contextlib.suppress(RuntimeError):
            task = asyncio.get_running_loop().create_task(self.source.refresh(),
                                                          name=f"lb-refresh:{self.target.name}")
            self._refreshes.add(task)
            task.add_done_callback(self._refreshes.discard)

    async def _active_checks(self) -> None:
        check = self.health_check
        assert check is not None
        while True:
            eps = list(self._usable)
            results = await asyncio.gather(*(check(e) for e in eps), return_exceptions=True)
            for ep, ok in zip(eps, results, strict=True):
                with self._lock:
                    was = self._detector.is_ejected(ep.key)
                    if ok is True:
                        self._detector.readmit(ep.key)
                    elif not was:
                        self._detector.eject(ep.key)
                        self._ejections += 1
                    self._dirty = True
                if ok is True and was and self.hooks.on_readmit:
                    self.hooks.on_readmit(ep)
                elif ok is not True and not was and self.hooks.on_eject:
                    self.hooks.on_eject(ep)
            await asyncio.sleep(self.health_interval)

    # -- using endpoints ----------------------------------------------------------------------

    @contextlib.contextmanager
    def track(self, ep: Endpoint) -> Any:
        """Count a request in flight on `ep` (what least_outstanding balances on)."""
        with self._lock:
            self._outstanding[ep.key] += 1
        try:
            yield ep
        finally:
            with self._lock:
                self._outstanding[ep.key] -= 1
                if self._outstanding[ep.key] <= 0:
                    del self._outstanding[ep.key]

    @contextlib.asynccontextmanager
    async def connection(
        self, key: str | None = None, *, endpoint: str | None = None, timeout: float | None = None
    ) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        """A TCP connection to a pod chosen for this request (or to the named `endpoint`).

        A pod that refuses or does not answer within `timeout` (default `connect_timeout`) is
        reported and another one is tried, up to `attempts` in all; then ConnectError."""
        timeout = self.connect_timeout if timeout is None else timeout
        attempts = Attempts(self, key=key, endpoint=endpoint)
        for ep in attempts:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(ep.address, ep.port), timeout)
            except CONNECT_ERRORS as exc:
                attempts.failed(ep, exc)
                continue
            self.report_success(ep)
            with self.track(ep):
                try:
                    yield reader, writer
                finally:
                    writer.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await writer.wait_closed()
            return
        raise attempts.error("connecting to")

    async def call(
        self,
        fn: Callable[[Endpoint], Awaitable[T]],
        *,
        key: str | None = None,
        idempotent: bool = True,
        timeout: float | None = None,
    ) -> T:
        """Run `fn(endpoint)` on a picked endpoint. A connection-level failure (OSError,
        TimeoutError) is reported and, for idempotent work, retried on another endpoint.
        `timeout` bounds each attempt (seconds): an endpoint that accepts and then hangs counts
        as failed instead of holding the caller forever."""
        attempts = Attempts(self, key=key, tries=None if idempotent else 1)
        for ep in attempts:
            with self.track(ep):
                try:
                    result = await asyncio.wait_for(fn(ep), timeout)
                except CONNECT_ERRORS as exc:
                    attempts.failed(ep, exc)
                    continue
            self.report_success(ep)
            return result
        raise attempts.error("calling")

    def stats(self) -> dict[str, Any]:
        """Pool size, ready and ejected counts, picks per endpoint, ejections so far."""
        with self._lock:
            ejected = self._detector.ejected_keys()
            return {
                "size": len(self._endpoints),
                "usable": len(self._usable),
                "ejected": sorted(ejected),
                "ejections": self._ejections,
                "picks": dict(self._picks),
                "outstanding": dict(self._outstanding),
            }
