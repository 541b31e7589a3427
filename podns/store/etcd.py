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

Failover and timeouts: requests go to the last endpoint that answered; a connection failure or
"no leader" moves on to the next member at once, a read that times out (`attempt_timeout`) too.
A write whose answer was lost (timed out, "request timed out due to leader failure") may have
been applied: every write is a compare-and-swap txn whose failure branch reads the key, so it
is retried safely and a retry that finds our own value in place reports success (not
AlreadyExists or Conflict). Nothing waits longer than `timeout` seconds: then Unavailable,
never a hang. Deletes read first (to know the last state even when the answer is lost).

Keys live under `root` (default `/podns/`), so several clusters or tests can share one etcd.
The transport (endpoints, failover, error answers) is `_etcd_client.py`; aiohttp is imported
only there and here, and its errors become `Unavailable`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import deque
from typing import Any

import aiohttp
import orjson

from podns.store._common import decode_many, encode, prefix_range, with_rv, without_rv
from podns.store._etcd_client import (
    DEFAULT_ATTEMPT_TIMEOUT,
    DEFAULT_TIMEOUT,
    Ambiguous,
    EndpointFailed,
    EtcdClient,
    FutureRevision,
    b64,
    unb64,
)
from podns.store.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    NotFound,
    StoreError,
    Unavailable,
)
from podns.store.interface import EventType, ListResult, Obj, WatchEvent, WatchStream
from podns.store.tls import EtcdTLS
from podns.store.watchcache import DEFAULT_QUEUE_SIZE

#: the Kubernetes API server compacts etcd every 5 minutes, keeping 5 minutes of history
DEFAULT_COMPACT_INTERVAL = 300.0
DEFAULT_RETENTION = 300.0


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
        tls: EtcdTLS | None = None,
    ) -> None:
        """`endpoints`: client URLs (`http://127.0.0.1:2379`, `https://...` with `tls`); `root`:
        key prefix, ending in `/`; `compact_interval` 0 disables automatic compaction. ValueError
        when a TLS file cannot be used."""
        if not root.endswith("/"):
            raise ValueError(f"etcd key root {root!r} must end in '/'")
        self._client = EtcdClient(endpoints, timeout=timeout, attempt_timeout=attempt_timeout,
                                  on_first_use=self._start_compactor,
                                  tls=tls.context() if tls is not None else None)
        self._call = self._client.call
        self._root = root
        self._timeout = timeout
        self._queue_size = watch_queue_size
        self._compact_interval = compact_interval
        self._retention = retention
        self._compactor: asyncio.Task[None] | None = None
        self._watches: set[_EtcdWatch] = set()
        self._closed = False

    def _start_compactor(self) -> None:
        if self._compact_interval > 0:
            self._compactor = asyncio.get_running_loop().create_task(
                self._compact_forever(), name="etcd-compactor"
            )

    def _decode(self, kv: dict[str, Any]) -> Obj:
        obj: Obj = orjson.loads(unb64(kv["value"]))
        obj.setdefault("metadata", {})["resourceVersion"] = kv["mod_revision"]
        return obj

    # -- reads ---------------------------------------------------------------------------------
    # get, list and current_rv are linearizable while etcd has quorum; without it they are
    # served from a live member's local state (serializable, `stale_ok`), so the API keeps
    # serving the last known state (writes still fail: they need quorum).

    async def get(self, key: str) -> Obj:
        resp = await self._call("/v3/kv/range", {"key": b64(self._root + key)}, stale_ok=True)
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
        body: dict[str, Any] = {"key": b64(lo), "range_end": b64(hi)}
        if limit is not None and limit > 0:
            body["limit"] = limit
        if at_rv:
            body["revision"] = at_rv
        try:
            resp = await self._call("/v3/kv/range", body, stale_ok=True)
        except FutureRevision:
            body.pop("revision")
            resp = await self._call("/v3/kv/range", body, stale_ok=True)
            at_rv = None
        kvs = resp.get("kvs") or []
        rv = at_rv if at_rv else int(resp["header"]["revision"])
        cont = None
        if resp.get("more") and kvs:
            cont = unb64(kvs[-1]["key"]).decode()[len(self._root) :]
        return ListResult(items=decode_many(kvs, self._decode), rv=rv, continue_key=cont)

    async def current_rv(self) -> int:
        resp = await self._call("/v3/kv/range", {"key": b64(self._root)}, stale_ok=True)
        return int(resp["header"]["revision"])

    # -- writes --------------------------------------------------------------------------------

    def _deadline(self) -> float:
        return time.monotonic() + self._timeout

    async def _read(self, k: str, deadline: float) -> dict[str, Any]:
        return await self._call("/v3/kv/range", {"key": k}, deadline=deadline)

    async def _txn(self, compare: dict[str, Any], success: dict[str, Any], k: str,
                   deadline: float) -> dict[str, Any]:
        """One compare-and-act txn whose failure branch reads the key."""
        body = {"compare": [compare], "success": [success], "failure": [{"request_range": {"key": k}}]}
        return await self._call("/v3/kv/txn", body, write=True, deadline=deadline)

    async def create(self, key: str, obj: Obj) -> Obj:
        k = b64(self._root + key)
        data = encode(key, without_rv(obj))
        put = {"request_put": {"key": k, "value": base64.b64encode(data).decode()}}
        absent = {"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": 0}
        deadline = self._deadline()
        ambiguous = False
        while True:
            try:
                resp = await self._txn(absent, put, k, deadline)
            except Ambiguous:
                ambiguous = True
                await asyncio.sleep(0.05)  # the answer was lost: give the cluster a moment
                continue
            if resp.get("succeeded"):
                return with_rv(obj, int(resp["header"]["revision"]))
            kvs = resp["responses"][0]["response_range"].get("kvs")
            if kvs:
                if ambiguous and unb64(kvs[0]["value"]) == data:
                    return self._decode(kvs[0])  # our own earlier attempt landed
                raise AlreadyExists(key)

    async def update(self, key: str, obj: Obj, *, expected_rv: int | None = None) -> Obj:
        k = b64(self._root + key)
        data = encode(key, without_rv(obj))
        put = {"request_put": {"key": k, "value": base64.b64encode(data).decode()}}
        deadline = self._deadline()
        ambiguous = False
        resp = await self._read(k, deadline)
        while True:
            kvs = resp.get("kvs")
            if not kvs:
                raise NotFound(key)
            cur_rv = int(kvs[0]["mod_revision"])
            if unb64(kvs[0]["value"]) == data and (ambiguous or expected_rv in (None, cur_rv)):
                # Unchanged (no write, no new revision), or our own earlier attempt landed.
                return self._decode(kvs[0])
            if expected_rv is not None and expected_rv != cur_rv:
                raise Conflict(f"{key}: resourceVersion {expected_rv} is stale (now {cur_rv})")
            same = {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": cur_rv}
            try:
                resp = await self._txn(same, put, k, deadline)
            except Ambiguous:
                ambiguous = True
                resp = await self._read(k, deadline)
                continue
            if resp.get("succeeded"):
                return with_rv(obj, int(resp["header"]["revision"]))
            # Lost a race: check again against what the failed txn read.
            resp = resp["responses"][0]["response_range"]

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Obj:
        k = b64(self._root + key)
        drop = {"request_delete_range": {"key": k, "prev_kv": True}}
        deadline = self._deadline()
        resp = await self._read(k, deadline)
        last: Obj | None = None
        while True:
            kvs = resp.get("kvs")
            if not kvs:
                if last is not None:
                    # An earlier attempt whose answer was lost did delete it; the deletion's
                    # exact revision is unknown, the read's is the closest bound.
                    return with_rv(last, int(resp["header"]["revision"]))
                raise NotFound(key)
            cur_rv = int(kvs[0]["mod_revision"])
            if expected_rv is not None and expected_rv != cur_rv:
                raise Conflict(f"{key}: resourceVersion {expected_rv} is stale (now {cur_rv})")
            same = {"key": k, "result": "EQUAL", "target": "MOD", "mod_revision": cur_rv}
            try:
                resp = await self._txn(same, drop, k, deadline)
            except Ambiguous:
                last = self._decode(kvs[0])
                resp = await self._read(k, deadline)
                continue
            if resp.get("succeeded"):
                prev = resp["responses"][0]["response_delete_range"]["prev_kvs"][0]
                return with_rv(self._decode(prev), int(resp["header"]["revision"]))
            last = None
            resp = resp["responses"][0]["response_range"]

    # -- history -------------------------------------------------------------------------------

    async def compact(self, rv: int) -> None:
        target = min(rv + 1, await self.current_rv())
        # Already compacted further (another API server did it): nothing to do.
        with contextlib.suppress(Expired, FutureRevision):
            await self._call("/v3/kv/compaction", {"revision": target})

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

    def watch(self, prefix: str, from_rv: int) -> WatchStream:
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
        await self._client.close()


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
        client = store._client
        n = len(client.endpoints)
        errors: deque[str] = deque(maxlen=n)
        i = refused = 0
        try:
            while not self._ended:
                url = client.endpoints[(client.preferred + i) % n] + "/v3/watch"
                body = {"create_request": {"key": b64(lo), "range_end": b64(hi),
                                           "start_revision": self._next_rv, "prev_kv": True}}
                try:
                    await self._stream(url, body)
                    if self._ended:
                        return
                    errors.append(f"{url}: stream ended")
                    refused = 0
                except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
                    refused += 1
                    errors.append(f"{url}: {exc}")
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError, EndpointFailed) as exc:
                    # ValueError: a garbled or oversized message (orjson, aiohttp's line limit)
                    refused = 0
                    errors.append(f"{url}: {type(exc).__name__} {exc}")
                now = time.monotonic()
                if self._connected:
                    self._connected = False
                    failed_since = None  # had a working stream: a fresh failure window
                if failed_since is None:
                    failed_since = now
                elif now - failed_since > store._timeout or refused >= 2 * n:
                    raise Unavailable(f"etcd watch {self._prefix}: {'; '.join(errors)}")
                i += 1
                if i % n == 0:
                    await asyncio.sleep(0.2)
        except StoreError as exc:
            self._fail(exc)
        except Exception as exc:  # never leave the consumer waiting on a dead reader
            self._fail(Unavailable(f"etcd watch {self._prefix}: {type(exc).__name__} {exc}"))
        finally:
            self._store._watches.discard(self)

    async def _stream(self, url: str, body: dict[str, Any]) -> None:
        """Read one watch stream until it ends; raise on errors."""
        store = self._store
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=store._client.attempt_timeout)
        async with store._client.session().post(url, data=orjson.dumps(body), timeout=timeout) as resp:
            root_len = len(store._root)
            async for line in resp.content:
                if not line.strip():
                    continue
                msg = orjson.loads(line)
                if "error" in msg:
                    raise EndpointFailed(str(msg["error"]))
                result = msg.get("result") or {}
                if result.get("canceled"):
                    compacted = result.get("compact_revision")
                    if compacted:
                        raise Expired(f"too old resource version: {self._next_rv - 1} ({compacted})")
                    raise EndpointFailed(result.get("cancel_reason") or "watch canceled")
                if result.get("created"):
                    self._connected = True
                    if self._started is not None and not self._started.done():
                        self._started.set_result(None)
                for ev in result.get("events") or ():
                    self._deliver(ev, root_len)
                if self._error is not None:
                    raise self._error

    def _deliver(self, ev: dict[str, Any], root_len: int) -> None:
        kv = ev["kv"]
        rv = int(kv["mod_revision"])
        key = unb64(kv["key"]).decode()[root_len:]
        store = self._store
        if ev.get("type") == "DELETE":
            prev = ev.get("prev_kv")
            obj = with_rv(store._decode(prev), rv) if prev else {"metadata": {"resourceVersion": str(rv)}}
            event = WatchEvent("DELETED", key, obj, rv)
        else:
            kind: EventType = "ADDED" if kv.get("create_revision") == kv["mod_revision"] else "MODIFIED"
            event = WatchEvent(kind, key, store._decode(kv), rv)
        self._next_rv = rv + 1
        if len(self._queue) >= store._queue_size:
            self._error = Expired("watcher fell too far behind; relist")
            self._ended = True
        else:
            self._queue.append(event)
        self._changed.set()
