"""The distributed store: etcd v3 through its JSON gRPC gateway, with aiohttp.

Semantics are exactly `SQLiteStore`'s (the conformance suite proves it), mapped onto etcd:

- resourceVersion = etcd revision: an object's `mod_revision`, a list's header revision;
- create = txn `create_revision(key) == 0` then put; update and delete with `expected_rv` =
  txn `mod_revision(key) == expected_rv`; update without it retries the same txn against the
  revision it just read (Kubernetes' `GuaranteedUpdate`), so concurrent writers lose nothing;
- objects are stored without `metadata.resourceVersion` (it is stamped on read from the
  `mod_revision`), so an update to identical content is detected and writes nothing;
- watch = a `/v3/watch` stream per watcher from `start_revision = from_rv + 1` with `prev_kv`
  (DELETED events carry the last state at the deletion's revision); a compacted start revision
  raises Expired; a broken stream resumes on another endpoint from the last revision seen;
- `compact(rv)` compacts etcd at `rv + 1` (etcd keeps the revision it compacts at, so that
  watches from `rv` still work and older ones are Expired); a background task compacts to the
  revision seen `retention` seconds earlier every `compact_interval` seconds, as the Kubernetes
  API server does (every 5 minutes by default).

Failover and timeouts: requests go to the last endpoint that answered; a connection failure
moves on to the next at once, a read that times out too (after `attempt_timeout`). Writes are
retried on another endpoint only when the connection could not be made (a write that timed out
may have been applied; retrying it blindly could report AlreadyExists for our own create).
Nothing waits longer than `timeout` seconds: then Unavailable, never a hang.

Keys live under `root` (default `/podns/`), so several clusters or tests can share one etcd.
Only this module imports aiohttp's client for the store; its errors become `Unavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from podns.store._common import prefix_range, with_rv, without_rv
from podns.store.errors import AlreadyExists, Conflict, Expired, NotFound, StoreError, Unavailable
from podns.store.interface import ListResult, Obj, WatchEvent
from podns.store.watchcache import DEFAULT_QUEUE_SIZE

#: seconds a whole store call may take before Unavailable ("a few seconds", never a hang)
DEFAULT_TIMEOUT = 5.0
#: seconds one attempt against one endpoint may take before trying the next
DEFAULT_ATTEMPT_TIMEOUT = 2.0
#: the Kubernetes API server compacts etcd every 5 minutes, keeping 5 minutes of history
DEFAULT_COMPACT_INTERVAL = 300.0
DEFAULT_RETENTION = 300.0
#: a watch response may batch many events while catching up
MAX_MESSAGE = 64 * 1024 * 1024


class _EndpointFailed(Exception):
    """One endpoint could not serve the request; another may."""


class _FutureRevision(StoreError):
    """A read asked for a revision the cluster has not reached."""


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str) -> bytes:
    return base64.b64decode(s)


class EtcdStore:
    """`Store` over an etcd v3 cluster. See the module doc for the mapping."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        root: str = "/podns/",
        timeout: float = DEFAULT_TIMEOUT,
        attempt_timeout: float = DEFAULT_ATTEMPT_TIMEOUT,
        watch_queue_size: int = DEFAULT_QUEUE_SIZE,
        compact_interval: float = DEFAULT_COMPACT_INTERVAL,
        retention: float = DEFAULT_RETENTION,
    ) -> None:
        """`endpoints`: client URLs (`http://127.0.0.1:2379`); `root`: key prefix, ending in
        `/`; `compact_interval` 0 disables automatic compaction."""
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        if not root.endswith("/"):
            raise ValueError(f"etcd key root {root!r} must end in '/'")
        self._endpoints = [e.rstrip("/") for e in endpoints]
        self._root = root
        self._timeout = timeout
        self._attempt_timeout = attempt_timeout
        self._queue_size = watch_queue_size
        self._compact_interval = compact_interval
        self._retention = retention
        self._preferred = 0
        self._session: aiohttp.ClientSession | None = None
        self._compactor: asyncio.Task[None] | None = None
        self._watches: set[_EtcdWatch] = set()
        self._closed = False

    # -- transport -----------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise Unavailable("etcd store is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(read_bufsize=MAX_MESSAGE // 4)
            if self._compact_interval > 0:
                self._compactor = asyncio.get_running_loop().create_task(
                    self._compact_forever(), name="etcd-compactor"
                )
        return self._session

    async def _call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        """POST to the first endpoint that answers; map etcd errors to store errors."""
        session = self._http()
        data = orjson.dumps(body)
        deadline = time.monotonic() + self._timeout
        errors: list[str] = []
        n = len(self._endpoints)
        for i in range(n):
            idx = (self._preferred + i) % n
            url = self._endpoints[idx] + path
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            budget = min(remaining, self._attempt_timeout) if idempotent and i < n - 1 else remaining
            try:
                async with asyncio.timeout(budget):
                    async with session.post(url, data=data) as resp:
                        payload = orjson.loads(await resp.read())
            except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
                errors.append(f"{url}: {exc}")
                continue
            except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
                errors.append(f"{url}: {type(exc).__name__} {exc}")
                if idempotent:
                    continue
                raise Unavailable(f"etcd request {path} failed: {'; '.join(errors)}") from exc
            try:
                result = self._check(payload)
            except _EndpointFailed as exc:
                errors.append(f"{url}: {exc}")
                if idempotent:
                    continue
                raise Unavailable(f"etcd request {path} failed: {'; '.join(errors)}") from None
            self._preferred = idx
            return result
        raise Unavailable(f"etcd request {path} failed: {'; '.join(errors) or 'timed out'}")

    @staticmethod
    def _check(payload: dict[str, Any]) -> dict[str, Any]:
        """Return a successful payload; raise the store error an etcd error means."""
        if "error" not in payload:
            return payload
        message = str(payload.get("message") or payload.get("error"))
        if "required revision has been compacted" in message:
            raise Expired(message)
        if "required revision is a future revision" in message:
            raise _FutureRevision(message)
        code = payload.get("code")
        # Unavailable (14), DeadlineExceeded (4), Unknown (2, e.g. "leader changed"): another
        # member, or a later try, may succeed.
        if code in (2, 4, 14) or "no leader" in message or "timed out" in message:
            raise _EndpointFailed(message)
        raise StoreError(f"etcd: {message}")

    def _decode(self, kv: dict[str, Any]) -> Obj:
        obj: Obj = orjson.loads(_unb64(kv["value"]))
        obj.setdefault("metadata", {})["resourceVersion"] = kv["mod_revision"]
        return obj

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str) -> Obj:
        resp = await self._call("/v3/kv/range", {"key": _b64(self._root + key)}, idempotent=True)
        kvs = resp.get("kvs")
        if not kvs:
            raise NotFound(key)
        return self._decode(kvs[0])

    async def list(
        self,
        prefix: str,
        *,
        limit: int | None = None,
        start_after: str | None = None,
        at_rv: int | None = None,
    ) -> ListResult:
        lo, hi = prefix_range(self._root + prefix)
        if start_after is not None:
            lo = max(lo, self._root + start_after + "\x00")
        body: dict[str, Any] = {"key": _b64(lo), "range_end": _b64(hi)}
        if limit is not None and limit > 0:
            body["limit"] = limit
        if at_rv:
            body["revision"] = at_rv
        try:
            resp = await self._call("/v3/kv/range", body, idempotent=True)
        except _FutureRevision:
            body.pop("revision")
            resp = await self._call("/v3/kv/range", body, idempotent=True)
            at_rv = None
        kvs = resp.get("kvs") or []
        rv = at_rv if at_rv else int(resp["header"]["revision"])
        cont = None
        if resp.get("more") and kvs:
            cont = _unb64(kvs[-1]["key"]).decode()[len(self._root) :]
        return ListResult(items=[self._decode(kv) for kv in kvs], rv=rv, continue_key=cont)

    async def current_rv(self) -> int:
        resp = await self._call("/v3/kv/range", {"key": _b64(self._root)}, idempotent=True)
        return int(resp["header"]["revision"])

    # -- writes --------------------------------------------------------------------------------

    async def _txn(self, compare: dict[str, Any], success: dict[str, Any],
                   failure: dict[str, Any] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"compare": [compare], "success": [success]}
        if failure is not None:
            body["failure"] = [failure]
        return await self._call("/v3/kv/txn", body, idempotent=False)

    async def create(self, key: str, obj: Obj) -> Obj:
        k = _b64(self._root + key)
        value = base64.b64encode(orjson.dumps(without_rv(obj))).decode()
        resp = await self._txn(
            {"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": 0},
            {"request_put": {"key": k, "value": value}},
        )
        if not resp.get("succeeded"):
            raise AlreadyExists(key)
        return with_rv(obj, int(resp["header"]["revision"]))

    async def update(self, key: str, obj: Obj, *, expected_rv: int | None = None) -> Obj:
        k = _b64(self._root + key)
        data = orjson.dumps(without_rv(obj))
        value = base64.b64encode(data).decode()
        read = {"request_range": {"key": k}}
        resp = await self._call("/v3/kv/range", {"key": k}, idempotent=True)
        while True:
            kvs = resp.get("kvs")
            if not kvs:
                raise NotFound(key)
            cur_rv = int(kvs[0]["mod_revision"])
            if expected_rv is not None and expected_rv != cur_rv:
                raise Conflict(f"{key}: resourceVersion {expected_rv} is stale (now {cur_rv})")
            if _unb64(kvs[0]["value"]) == data:
                return self._decode(kvs[0])  # unchanged: no write, no new revision
            resp = await self._txn(
                {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": cur_rv},
                {"request_put": {"key": k, "value": value}},
                read,
            )
            if resp.get("succeeded"):
                return with_rv(obj, int(resp["header"]["revision"]))
            # Lost a race: re-check against what the failed txn read.
            resp = resp["responses"][0]["response_range"]

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Obj:
        k = _b64(self._root + key)
        drop = {"request_delete_range": {"key": k, "prev_kv": True}}
        if expected_rv is None:
            resp = await self._call("/v3/kv/deleterange", drop["request_delete_range"],
                                    idempotent=False)
            prev = resp.get("prev_kvs")
        else:
            resp = await self._txn(
                {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": expected_rv},
                drop,
                {"request_range": {"key": k}},
            )
            inner = resp["responses"][0]
            if not resp.get("succeeded"):
                if inner["response_range"].get("kvs"):
                    raise Conflict(f"{key}: resourceVersion {expected_rv} is stale")
                raise NotFound(key)
            prev = inner["response_delete_range"].get("prev_kvs")
        if not prev:
            raise NotFound(key)
        return with_rv(self._decode(prev[0]), int(resp["header"]["revision"]))

    # -- history -------------------------------------------------------------------------------

    async def compact(self, rv: int) -> None:
        target = min(rv + 1, await self.current_rv())
        # Already compacted further (another API server did it): nothing to do.
        with contextlib.suppress(Expired, _FutureRevision):
            await self._call("/v3/kv/compaction", {"revision": target}, idempotent=True)

    async def _compact_forever(self) -> None:
        """Every compact_interval seconds, compact to the revision seen `retention` ago."""
        seen: deque[tuple[float, int]] = deque()
        while True:
            with contextlib.suppress(StoreError):
                now = time.monotonic()
                seen.append((now, await self.current_rv()))
                target = None
                while seen and now - seen[0][0] >= self._retention:
                    target = seen.popleft()[1]
                if target is not None:
                    await self.compact(target)
            await asyncio.sleep(self._compact_interval)

    # -- watch ---------------------------------------------------------------------------------

    def watch(self, prefix: str, from_rv: int) -> AsyncIterator[WatchEvent]:
        w = _EtcdWatch(self, prefix, from_rv)
        self._watches.add(w)
        return w

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w in list(self._watches):
            await w.aclose()
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        if self._session is not None:
            await self._session.close()


class _EtcdWatch:
    """One `/v3/watch` stream read by a background task into a bounded queue.

    The reader resumes on another endpoint from the last revision it delivered when a stream
    breaks, and gives up with Unavailable after the store's timeout without any endpoint.
    Cancelling a pending `__anext__` leaves the watch intact.
    """

    def __init__(self, store: EtcdStore, prefix: str, from_rv: int) -> None:
        self._store = store
        self._prefix = prefix
        self._next_rv = from_rv + 1
        self._queue: deque[WatchEvent] = deque()
        self._error: BaseException | None = None
        self._ended = False
        self._changed = asyncio.Event()
        self._started: asyncio.Future[None] | None = None
        #: a stream was established since the reader last failed
        self._connected = False
        self._task: asyncio.Task[None] | None = None

    def __aiter__(self) -> _EtcdWatch:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._task is None:
            if self._ended:
                raise StopAsyncIteration
            self._started = asyncio.get_running_loop().create_future()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="etcd-watch")
        if self._started is not None:
            await asyncio.shield(self._started)
            self._started = None
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._error is not None:
                err, self._error = self._error, None
                self._ended = True
                raise err
            if self._ended:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()

    async def aclose(self) -> None:
        """Stop the stream and its reader."""
        self._ended = True
        self._store._watches.discard(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._changed.set()

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if self._started is not None and not self._started.done():
            self._started.set_result(None)
        self._changed.set()

    async def _run(self) -> None:
        store = self._store
        lo, hi = prefix_range(store._root + self._prefix)
        failed_since: float | None = None
        errors: list[str] = []
        n = len(store._endpoints)
        i = 0
        try:
            while not self._ended:
                url = store._endpoints[(store._preferred + i) % n] + "/v3/watch"
                body = {"create_request": {"key": _b64(lo), "range_end": _b64(hi),
                                           "start_revision": self._next_rv, "prev_kv": True}}
                try:
                    await self._stream(url, body)
                    if self._ended:
                        return
                    errors.append(f"{url}: stream ended")
                except (aiohttp.ClientError, OSError, TimeoutError, _EndpointFailed) as exc:
                    errors.append(f"{url}: {type(exc).__name__} {exc}")
                now = time.monotonic()
                if self._connected:
                    self._connected = False
                    failed_since = None  # had a working stream: a fresh failure window
                if failed_since is None:
                    failed_since = now
                elif now - failed_since > store._timeout:
                    raise Unavailable(f"etcd watch {self._prefix}: {'; '.join(errors[-n:])}")
                i += 1
                if i % n == 0:
                    await asyncio.sleep(0.2)
        except StoreError as exc:
            self._fail(exc)
        finally:
            self._store._watches.discard(self)

    async def _stream(self, url: str, body: dict[str, Any]) -> None:
        """Read one watch stream until it ends; raise on errors."""
        store = self._store
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=store._attempt_timeout)
        async with store._http().post(url, data=orjson.dumps(body), timeout=timeout) as resp:
            root_len = len(store._root)
            async for line in resp.content:
                if not line.strip():
                    continue
                msg = orjson.loads(line)
                if "error" in msg:
                    raise _EndpointFailed(str(msg["error"]))
                result = msg.get("result") or {}
                if result.get("canceled"):
                    compacted = result.get("compact_revision")
                    if compacted:
                        raise Expired(f"too old resource version: {self._next_rv - 1} ({compacted})")
                    raise _EndpointFailed(result.get("cancel_reason") or "watch canceled")
                if result.get("created"):
                    self._connected = True
                    if self._started is not None and not self._started.done():
                        self._started.set_result(None)
                for ev in result.get("events") or ():
                    self._deliver(ev, root_len)
                if self._error is not None:
                    raise self._error  # type: ignore[misc]

    def _deliver(self, ev: dict[str, Any], root_len: int) -> None:
        kv = ev["kv"]
        rv = int(kv["mod_revision"])
        key = _unb64(kv["key"]).decode()[root_len:]
        store = self._store
        if ev.get("type") == "DELETE":
            prev = ev.get("prev_kv")
            obj = with_rv(store._decode(prev), rv) if prev else {"metadata": {"resourceVersion": str(rv)}}
            event = WatchEvent("DELETED", key, obj, rv)
        else:
            kind = "ADDED" if kv.get("create_revision") == kv["mod_revision"] else "MODIFIED"
            event = WatchEvent(kind, key, store._decode(kv), rv)
        self._next_rv = rv + 1
        if len(self._queue) >= store._queue_size:
            self._error = Expired("watcher fell too far behind; relist")
            self._ended = True
        else:
            self._queue.append(event)
        self._changed.set()
