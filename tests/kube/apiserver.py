"""A tiny in-process Kubernetes-like API server for the client's unit tests.

It serves any `/api/v1/...` or `/apis/<g>/<v>/...` collection generically (objects keyed by
path), keeps a resourceVersion counter and an event history, streams watches, and can be told
to misbehave in the ways that are hard to provoke on the real server: drop a watch after N
events, answer 410 Gone, answer 5xx / 429 with Retry-After, compact its history. The real podns
API server is exercised by tests/e2e/test_kube_*.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from podns.objects.mergepatch import merge_patch

Obj = dict[str, Any]


def status(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "message": message, "code": code}


@dataclass
class Failure:
    """Answer the next `count` matching requests with `code` (and optional Retry-After)."""

    method: str
    code: int
    count: int = 1
    retry_after: int | None = None
    body: Obj | None = None
    watch_only: bool = False


@dataclass
class FakeAPIServer:
    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)  # collection -> name -> obj
    history: list[tuple[int, str, str, Obj]] = field(default_factory=list)  # rv, coll, type, obj
    rv: int = 1
    compacted_rv: int = 0
    failures: list[Failure] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    drop_watch_after: int | None = None  # close each watch stream after this many events
    bookmark_interval: float | None = None
    end_watches_at_once: bool = False  # end every watch cleanly before any event
    watchers: list[asyncio.Queue[tuple[int, str, str, Obj] | None]] = field(default_factory=list)

    # -- state helpers used by tests -------------------------------------------------------

    def _record(self, coll: str, etype: str, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = (self.rv, coll, etype, orjson.loads(orjson.dumps(obj)))
        self.history.append(entry)
        for q in self.watchers:
            q.put_nowait(entry)

    def put(self, coll: str, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        etype = "MODIFIED" if name in self.objects.setdefault(coll, {}) else "ADDED"
        obj = orjson.loads(orjson.dumps(obj))
        self.objects[coll][name] = obj
        self._record(coll, etype, obj)
        return obj

    def remove(self, coll: str, name: str) -> Obj:
        obj = self.objects[coll].pop(name)
        self._record(coll, "DELETED", obj)
        return obj

    def compact(self) -> None:
        """Forget all history: watches from any older version get 410 Gone."""
        self.compacted_rv = self.rv
        self.history.clear()

    def close_watches(self) -> None:
        for q in self.watchers:
            q.put_nowait(None)

    # -- HTTP ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    def _failure(self, request: web.Request, watch: bool) -> web.Response | None:
        for f in self.failures:
            if f.method == request.method and f.count > 0 and (watch or not f.watch_only):
                f.count -= 1
                headers = {"Retry-After": str(f.retry_after)} if f.retry_after is not None else {}
                body = f.body or status(f.code, "InternalError", "injected failure")
                return web.Response(status=f.code, body=orjson.dumps(body), headers=headers,
                                    content_type="application/json")
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        params = dict(request.query)
        self.requests.append((request.method, request.path, params))
        watch = params.get("watch") in ("true", "1")
        injected = self._failure(request, watch)
        if injected is not None:
            return injected
        parts = request.path.strip("/").split("/")
        base = 2 if parts[0] == "api" else 3
        rest = parts[base:]
        ns = None
        if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
            ns, rest = rest[1], rest[2:]
        coll = "/".join(parts[:base] + ([f"namespaces/{ns}"] if ns else []) + rest[:1])
        name = rest[1] if len(rest) > 1 else None
        if request.method == "GET" and name is None:
            if watch:
                return await self._watch(request, coll, params)
            return self._list(coll, params)
        if request.method == "GET":
            obj = self.objects.get(coll, {}).get(name)
            if obj is None:
                return self._json(status(404, "NotFound", f'"{name}" not found'), 404)
            return self._json(obj)
        if request.method == "POST":
            obj = await request.json()
            if obj["metadata"]["name"] in self.objects.get(coll, {}):
                return self._json(status(409, "AlreadyExists", "already exists"), 409)
            return self._json(self.put(coll, obj), 201)
        if request.method == "PUT":
            obj = await request.json()
            cur = self.objects.get(coll, {}).get(name)
            if cur is None:
                return self._json(status(404, "NotFound", "not found"), 404)
            want = obj["metadata"].get("resourceVersion")
            if want and want != cur["metadata"]["resourceVersion"]:
                return self._json(status(409, "Conflict", "the object has been modified"), 409)
            return self._json(self.put(coll, obj))
        if request.method == "PATCH":
            cur = self.objects.get(coll, {}).get(name)
            if cur is None:
                return self._json(status(404, "NotFound", "not found"), 404)
            patch = await request.json()
            merged = merge_patch(orjson.loads(orjson.dumps(cur)), patch)
            return self._json(self.put(coll, merged))
        if request.method == "DELETE":
            if name not in self.objects.get(coll, {}):
                return self._json(status(404, "NotFound", "not found"), 404)
            return self._json(self.remove(coll, name))
        return self._json(status(405, "MethodNotAllowed", "no"), 405)

    def _json(self, obj: Any, code: int = 200) -> web.Response:
        return web.Response(status=code, body=orjson.dumps(obj), content_type="application/json")

    def _list(self, coll: str, params: dict[str, str]) -> web.Response:
        items = sorted(self._matching(coll).values(), key=lambda o: o["metadata"]["name"])
        start = int(params.get("continue") or 0)
        limit = int(params.get("limit") or 0) or len(items) or 1
        page = items[start:start + limit]
        meta: Obj = {"resourceVersion": str(self.rv)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return self._json({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": page})

    def _matching(self, coll: str) -> dict[str, Obj]:
        if "/namespaces/" in coll:
            return dict(self.objects.get(coll, {}))
        # all-namespaces collection: gather every namespaced collection of that resource
        head, _, plural = coll.rpartition("/")
        out: dict[str, Obj] = {}
        for c, objs in self.objects.items():
            if c == coll or (c.startswith(head + "/namespaces/") and c.endswith("/" + plural)):
                out.update({f"{c}/{n}": o for n, o in objs.items()})
        return out

    def _in(self, coll: str, entry_coll: str) -> bool:
        if coll == entry_coll:
            return True
        head, _, plural = coll.rpartition("/")
        return "/namespaces/" not in coll and entry_coll.startswith(head + "/namespaces/") \
            and entry_coll.endswith("/" + plural)

    async def _watch(self, request: web.Request, coll: str, params: dict[str, str]
                     ) -> web.StreamResponse:
        since = int(params.get("resourceVersion") or self.rv)
        if since < self.compacted_rv:
            return self._json(status(410, "Expired", f"too old resource version: {since}"), 410)
        queue: asyncio.Queue[tuple[int, str, str, Obj] | None] = asyncio.Queue()
        for entry in self.history:
            if entry[0] > since:
                queue.put_nowait(entry)
        self.watchers.append(queue)
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        sent = 0
        timeout = 0.0 if self.end_watches_at_once else float(params.get("timeoutSeconds") or 3600)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if self.drop_watch_after is not None and sent >= self.drop_watch_after:
                    # a broken connection: no zero-length chunk
                    request.transport.close() if request.transport else None
                    return resp
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    entry = await asyncio.wait_for(queue.get(), min(remaining,
                                                   self.bookmark_interval or remaining))
                except TimeoutError:
                    if loop.time() < deadline and params.get("allowWatchBookmarks") == "true":
                        bm = {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                              "metadata": {"resourceVersion": str(self.rv)}}}
                        await resp.write(orjson.dumps(bm) + b"\n")
                    continue
                if entry is None:
                    break
                if entry[0] == -1:  # injected ERROR event
                    await resp.write(orjson.dumps({"type": "ERROR", "object": entry[3]}) + b"\n")
                    break
                if not self._in(coll, entry[1]):
                    continue
                await resp.write(orjson.dumps({"type": entry[2], "object": entry[3]}) + b"\n")
                sent += 1
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
        finally:
            self.watchers.remove(queue)
        return resp

    def error_event(self, code: int = 410, reason: str = "Expired") -> None:
        """Send an ERROR event to every open watch (then they end)."""
        for q in self.watchers:
            q.put_nowait((-1, "", "ERROR", status(code, reason, "injected error event")))


def pod(name: str, ns: str = "default", **labels: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": {}}
