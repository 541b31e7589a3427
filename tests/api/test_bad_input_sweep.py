"""The bad-input sweep: hypothesis generates requests (bodies in JSON, YAML and protobuf, odd
headers, odd query parameters, odd paths) against a real API server over HTTP, and not one of
them may be answered 500 (or anything but a success or a 4xx/5xx Status other than 500).

The server is the real one (real registry of kinds, SQLite store) on a loopback port, served
from a thread of its own; requests go over a keep-alive session, SWEEP_BATCH at a time, so the
sweep of at least SWEEP_REQUESTS requests takes well under a minute. Watch requests carry a
negative timeoutSeconds (they end at once) and the wait for a future resourceVersion is cut to
a few milliseconds: both are tested for what they answer elsewhere, here they only must not 500.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from podns.api.encoding.protobuf import PROTOBUF
from podns.api.encoding.protobuf import encode as protobuf_encode
from podns.api.handlers import dispatch
from podns.api.server.apiserver import ApiServer
from podns.store.sqlite import SQLiteStore

from .test_no_500 import SAMPLES, WEIRD, mutate

#: the issue's floor: at least this many generated requests per run
SWEEP_REQUESTS = 10_000
#: requests in flight at once (one hypothesis example each)
SWEEP_BATCH = 25
#: attempts of one request whose pooled connection the server had closed
CONNECT_TRIES = 5
EXAMPLES = int(os.environ.get("PODNS_SWEEP_EXAMPLES", SWEEP_REQUESTS // SWEEP_BATCH))

COLLECTIONS = [*SAMPLES, "/api/v1/namespaces/default/configmaps", "/api/v1/namespaces/default/secrets",
               "/api/v1/namespaces", "/api/v1/nodes", "/api/v1/namespaces/default/events", "/api/v1/pods",
               "/apis/coordination.k8s.io/v1/namespaces/default/leases"]
SUFFIXES = ["", "/p", "/s", "/db", "/e", "/p/status", "/db/scale", "/p/log", "/p/eviction",
            "/db/status", "/%00", "/..", "/x/y/z", "/p/exec", "/p/portforward", "/p/binding"]
OTHER_PATHS = ["/api", "/apis", "/version", "/openapi/v2", "/openapi/v3", "/api/v1", "/apis/apps/v1",
               "/ui/", "/metrics", "/readyz", "/apis/x/y/z", "//", "/api/v1/namespaces/%zz/pods"]
PARAMS = ["limit", "continue", "resourceVersion", "resourceVersionMatch", "timeoutSeconds", "watch",
          "labelSelector", "fieldSelector", "fieldManager", "dryRun", "fieldValidation",
          "propagationPolicy", "gracePeriodSeconds", "orphanDependents", "force", "allowWatchBookmarks",
          "sendInitialEvents", "pretty", "container", "follow", "tailLines", "sinceSeconds", "limitBytes",
          "previous", "timestamps", "includeObject", "x"]
PARAM_VALUES = ["", "0", "1", "-1", "-5", "2147483648", "99999999999999999999", "true", "false", "All",
                "Strict", "Warn", "Foreground", "a=b", "a in (b,c)", "!a", "metadata.name=p",
                "spec.nodeName!=x", "status.phase=Running", "a=", "=b", "((", "\x00", "é", "%",
                "NotOlderThan", "Exact", "eyJ2IjoxfQ", "c"]
CONTENT_TYPES = ["application/json", "application/yaml", "application/apply-patch+yaml",
                 "application/merge-patch+json", "application/strategic-merge-patch+json",
                 "application/json-patch+json", "application/vnd.kubernetes.protobuf", "text/plain",
                 "application/x-www-form-urlencoded", "", ";", "application/json; charset=utf-16",
                 "application/vnd.kubernetes.protobuf;stream=watch", "*/*"]
ACCEPTS = ["application/json", "application/json;as=Table;v=v1;g=meta.k8s.io",
           "application/json;as=Table;v=v1beta1;g=meta.k8s.io", "application/vnd.kubernetes.protobuf",
           "application/yaml", "text/html", "*/*", ";;", "application/json;as=PartialObjectMetadataList"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8)


def body(rng: random.Random, collection: str, kind: str, raw: bytes, text: str) -> tuple[bytes, str]:
    """A body of `kind` and the Content-Type it is sent with (not always the one that fits):
    a valid object of the collection's kind mutated a few times, as JSON, YAML or protobuf (cut
    short at times), a JSON patch of odd operations, or `raw` bytes / `text`."""
    obj: Any = SAMPLES.get(collection) or SAMPLES[next(iter(SAMPLES))]
    for _ in range(rng.randint(0, 3)):
        obj = mutate(obj, rng)
    if kind == "json":
        return orjson.dumps(obj), rng.choice(CONTENT_TYPES)
    if kind == "yaml":
        return (yaml.safe_dump(obj) if rng.random() < 0.7 else text).encode(), rng.choice(
            ["application/yaml", "application/apply-patch+yaml"])
    if kind == "protobuf":
        try:
            data = protobuf_encode(obj)
        except Exception:  # a mutation protobuf cannot carry: bytes after the magic instead
            data = b"k8s\x00" + raw
        return (data[:rng.randint(0, len(data))] if rng.random() < 0.5 else data), PROTOBUF
    if kind == "patch":
        ops = [{"op": rng.choice(["add", "replace", "remove", "test", "move", "copy", "bogus"]),
                "path": rng.choice(["/spec", "/metadata/labels/x", "/x/y", "", "/spec/ports/0", "/-", "~"]),
                "from": rng.choice(["/metadata", "/x", 3]),
                "value": rng.choice(WEIRD)} for _ in range(rng.randint(0, 3))]
        return orjson.dumps(ops), "application/json-patch+json"
    return raw, rng.choice(CONTENT_TYPES)


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: bytes | None


@st.composite
def requests(draw: st.DrawFn, token: str) -> Request:
    """One request: hypothesis draws the body's kind, odd text and bytes, a random JSON value;
    a seeded Random (drawn too) makes the many small choices, which keeps generation cheap."""
    rng = random.Random(draw(st.integers(0, 2**64)))  # seeded by hypothesis: cheap, reproducible
    text = draw(st.text(max_size=40))
    method = rng.choice(["GET", "POST", "POST", "PUT", "PUT", "PATCH", "PATCH", "DELETE", "HEAD"])
    aim = rng.random()
    if aim < 0.6:  # at the served kinds' validation: a create, or a write to an existing object
        collection = rng.choice(list(SAMPLES))
        name = SAMPLES[collection]["metadata"]["name"]
        path = collection if method == "POST" else f"{collection}/{name}{rng.choice(['', '', '/status'])}"
    elif aim < 0.9:
        collection = rng.choice(COLLECTIONS)
        path = collection + rng.choice(SUFFIXES)
    else:
        path, collection = rng.choice(OTHER_PATHS), next(iter(SAMPLES))
    params = {k: rng.choice([*PARAM_VALUES, text[:10]]) for k in rng.sample(PARAMS, rng.randint(0, 4))}
    if params.get("watch") not in (None, "", "0", "false"):
        params["timeoutSeconds"] = "-1"  # a watch ends at once: the sweep must not wait on streams
    headers = {"Authorization": f"Bearer {token}"}
    if rng.random() < 0.05:
        headers["Authorization"] = rng.choice(["", "Bearer", "Basic eDp5", "Bearer x", f"bearer {token}",
                                               f"Bearer  {token} "])
    if rng.random() < 0.5:
        headers["Accept"] = rng.choice([*ACCEPTS, "".join(c for c in text if " " <= c <= "~")])
    data = None
    if method in ("POST", "PUT", "PATCH", "DELETE") and rng.random() < 0.9:
        kind = draw(st.sampled_from(["json", "json", "yaml", "protobuf", "random-json", "raw", "patch"]))
        if kind == "random-json":  # stdlib json: integers past 64 bits, Infinity
            data, ctype = json.dumps(draw(json_values)).encode(), rng.choice(CONTENT_TYPES)
        else:
            data, ctype = body(rng, collection, kind, draw(st.binary(max_size=120)), text)
        if ctype:
            headers["Content-Type"] = ctype
    return Request(method, path, params, headers, data)


@dataclass
class Sweep:
    """The API server on a loop of its own thread, and the client session on that loop."""

    loop: asyncio.AbstractEventLoop
    server: ApiServer
    session: aiohttp.ClientSession
    token: str
    sent: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    #: the slowest requests (seconds, method, path, params), to see what a slow sweep waits on
    slowest: list[tuple[float, str, str, dict[str, str]]] = field(default_factory=list)

    def run(self, batch: list[Request]) -> list[tuple[Request, int, bytes]]:
        return asyncio.run_coroutine_threadsafe(self._send_all(batch), self.loop).result(120)

    async def _send_all(self, batch: list[Request]) -> list[tuple[Request, int, bytes]]:
        return list(await asyncio.gather(*(self._send(r) for r in batch)))

    async def _send(self, req: Request) -> tuple[Request, int, bytes]:
        t0 = time.monotonic()
        for attempt in range(CONNECT_TRIES):
            try:
                async with self.session.request(req.method, self.server.url + req.path,
                                                params=req.params, headers=req.headers,
                                                data=req.body) as resp:
                    body = await resp.read()
                    self.sent += 1
                    took = time.monotonic() - t0
                    if took > 0.5:
                        self.slowest.append((took, req.method, req.path, req.params))
                    self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                    return req, resp.status, body
            except aiohttp.ServerDisconnectedError as exc:
                # the server closes a connection after a request whose body it did not read (a
                # 401 before the body, a body it could not decode); other requests in flight may
                # have picked that pooled connection: they go again on another one
                if attempt == CONNECT_TRIES - 1:
                    return req, 0, repr(exc).encode()
        raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sweep]:
    tmp: Path = tmp_path_factory.mktemp("sweep")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sweep-server", daemon=True)
    thread.start()

    async def start() -> Sweep:
        store = SQLiteStore(tmp / "podns.db")
        server = ApiServer(store, tmp, "127.0.0.1:0", tls=False)
        await server.start()
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=SWEEP_BATCH))
        assert server.tokens is not None
        return Sweep(loop, server, session, server.tokens.admin)

    s = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    for path, body in SAMPLES.items():  # objects for the item paths to find
        s.run([Request("POST", path, {}, {"Authorization": f"Bearer {s.token}",
                                          "Content-Type": "application/json"}, orjson.dumps(body))])
    try:
        yield s
    finally:
        async def stop() -> None:
            await s.session.close()
            await s.server.stop()
            await s.server.store.close()

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.mark.timeout(600)
def test_no_generated_request_gets_a_500(sweep: Sweep, monkeypatch: pytest.MonkeyPatch) -> None:
    """given SWEEP_REQUESTS generated requests (bodies, headers, parameters, paths), not one is
    answered 500, and every error answer from the API is a Status with its own code."""
    monkeypatch.setattr(dispatch, "FRESH_WAIT", 0.01)
    started, before = time.monotonic(), sweep.sent

    # no shrinking: a failing request is named by the assertion itself, and shrinking batches
    # of requests against a server takes minutes
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(requests(sweep.token), min_size=SWEEP_BATCH, max_size=SWEEP_BATCH))
    def check(batch: list[Request]) -> None:
        for req, status, body in sweep.run(batch):
            assert status not in (0, 500), (req, body[:500])
            if status >= 400 and req.method != "HEAD" and body[:1] == b"{":
                reply = orjson.loads(body)
                if reply.get("kind") == "Status":
                    assert reply["code"] == status, (req, reply)

    check()
    took = time.monotonic() - started
    sent = sweep.sent - before
    print(f"\nbad-input sweep: {sent} requests in {took:.1f} s, statuses "
          f"{dict(sorted(sweep.statuses.items()))}, slowest {sorted(sweep.slowest)[-5:]}")
    assert sent >= SWEEP_REQUESTS
