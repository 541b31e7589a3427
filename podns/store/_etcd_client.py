"""The etcd backend's transport: JSON-gateway requests with failover and bounded waits.

Private to `podns.store.etcd` (which maps store semantics onto these calls). Owns the aiohttp
session, the choice of endpoint, and the translation of etcd's error answers:

- a refused connection, "no leader", "leader changed", "too many requests": nothing was
  applied; the next member is tried at once, rounds over all members 0.1 s apart (an election
  takes about a second);
- a timeout or lost answer, "request timed out", "request cancelled": a write may have been
  applied, so `call(write=True)` raises `Ambiguous` for the caller to resolve by reading;
  reads simply try again;
- "required revision has been compacted" -> Expired; "future revision" -> FutureRevision;
  "request is too large" / gRPC "larger than max" -> TooLarge (an Invalid);
- after `timeout` seconds, or once every member refused the connection twice: Unavailable.

Reads that may be stale (`call(stale_ok=True)`: the store's get, list and current_rv) keep
working without quorum: once a live member has answered "no leader" for `STALE_AFTER` seconds
(an election's length: a healthy cluster elects a new leader within it), the read is sent again
as etcd's *serializable* range (`"serializable": true`, without `hasleader`), which any live
member answers from its own applied state. The client then remembers the quorum loss and the
next such read falls back at the first "no leader", until a linearizable request succeeds again.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from podns.store.errors import Expired, StoreError, TooLarge, Unavailable

#: seconds a whole store call may take before Unavailable ("a few seconds", never a hang)
DEFAULT_TIMEOUT = 5.0
#: seconds one attempt against one endpoint may take before trying the next
DEFAULT_ATTEMPT_TIMEOUT = 2.0
#: a watch response may batch many events while catching up
MAX_MESSAGE = 64 * 1024 * 1024
#: seconds of "no leader" after which a stale-ok read is served serializable (local state)
STALE_AFTER = 1.0
#: request headers of a serializable read: no `hasleader`, so a leaderless member answers
_NO_LEADER_OK = {"Grpc-Metadata-hasleader": "false"}


class EndpointFailed(Exception):
    """One endpoint could not serve the request; another may. `ambiguous`: a write may
    nevertheless have been applied."""

    def __init__(self, message: str, *, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.ambiguous = ambiguous


class Ambiguous(Exception):
    """A write's outcome is unknown (its answer was lost); the caller reads to find out."""


class FutureRevision(StoreError):
    """A read asked for a revision the cluster has not reached."""


def b64(s: str) -> str:
    """A key as the gateway wants it."""
    return base64.b64encode(s.encode()).decode()


def unb64(s: str) -> bytes:
    """A key or value as the gateway sends it."""
    return base64.b64decode(s)


def check(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a successful payload; raise what an etcd error answer means (see module doc)."""
    if "error" not in payload:
        return payload
    message = str(payload.get("message") or payload.get("error"))
    if "required revision has been compacted" in message:
        raise Expired(message)
    if "required revision is a future revision" in message:
        raise FutureRevision(message)
    if "request is too large" in message or "larger than max" in message:
        raise TooLarge(f"object too large for etcd: {message}")
    if "timed out" in message or "cancelled" in message:
        raise EndpointFailed(message, ambiguous=True)
    if payload.get("code") in (2, 4, 8, 14) or "leader" in message:
        raise EndpointFailed(message, ambiguous=False)
    raise StoreError(f"etcd: {message}")


class EtcdClient:
    """Requests to the members of one etcd cluster."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        on_first_use: Callable[[], None] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`endpoints`: client URLs; `on_first_use` runs once, inside the event loop, when the
        first request is made (the store starts its compactor there); `tls`: for https
        endpoints (None: the system's defaults)."""
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        #: index of the endpoint that answered last (tried first)
        self.preferred = 0
        #: a stale-ok read was last served serializable: no quorum (until a linearizable success)
        self.no_quorum = False
        self._on_first_use = on_first_use
        self._session: aiohttp.ClientSession | None = None
        self._tls = tls
        self.closed = False

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (created on first use). Raises Unavailable once closed."""
        if self.closed:
            raise Unavailable("etcd store is closed")
        if self._session is None:
            # No connection cap: every watch holds a connection for its lifetime, and aiohttp's
            # default of 100 would make the 101st watch, and every request after it, wait.
            # `hasleader` (clientv3's WithRequireLeader): a member cut off from the leader
            # fails requests and cancels watches at once instead of leaving a watch silent.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ssl=self._tls or True), read_bufsize=MAX_MESSAGE // 4,
                headers={"Grpc-Metadata-hasleader": "true"},
            )
            if self._on_first_use is not None:
                self._on_first_use()
        return self._session

    async def call(
        self, path: str, body: dict[str, Any], *, write: bool = False, deadline: float | None = None,
        stale_ok: bool = False,
    ) -> dict[str, Any]:
        """POST `body` to `path` on the first member that answers; see the module doc for what
        is retried, what raises Ambiguous (writes only), when a `stale_ok` read becomes
        serializable, and when Unavailable comes."""
        session = self.session()
        data = orjson.dumps(body)
        headers: dict[str, str] | None = None
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        errors: list[str] = []
        n = len(self.endpoints)
        attempt = refused = 0
        leaderless_since: float | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or refused >= 2 * n:
                break
            idx = (self.preferred + attempt) % n
            attempt += 1
            if attempt > n and attempt % n == 1:
                await asyncio.sleep(min(0.1, remaining))
            url = self.endpoints[idx] + path
            try:
                async with asyncio.timeout(min(remaining, self.attempt_timeout)):
                    async with session.post(url, data=data, headers=headers) as resp:
                        payload = orjson.loads(await resp.read())
            except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
                # Every member refusing twice in a row: nothing is listening, say so now.
                refused += 1
                errors.append(f"{url}: {exc}")
                continue
            except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
                refused = 0
                errors.append(f"{url}: {type(exc).__name__} {exc}")
                if write:
                    raise Ambiguous(errors[-1]) from exc
                continue
            try:
                result = check(payload)
            except EndpointFailed as exc:
                refused = 0
                errors.append(f"{url}: {exc}")
                if write and exc.ambiguous:
                    raise Ambiguous(errors[-1]) from None
                if stale_ok and headers is None and "no leader" in str(exc):
                    # A live member without a leader. Past an election's length (or when
                    # quorum is already known lost) read its local state instead.
                    now = time.monotonic()
                    leaderless_since = leaderless_since or now
                    if self.no_quorum or now - leaderless_since >= STALE_AFTER:
                        data = orjson.dumps({**body, "serializable": True})
                        headers = _NO_LEADER_OK
                        attempt -= 1  # the same member again, at once
                continue
            self.preferred = idx
            self.no_quorum = headers is not None
            return result
        raise Unavailable(f"etcd request {path} failed: {'; '.join(errors[-n:]) or 'timed out'}")

    async def close(self) -> None:
        """Close the session; later calls raise Unavailable."""
        self.closed = True
        if self._session is not None:
            await self._session.close()
