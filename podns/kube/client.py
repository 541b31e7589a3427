"""The asynchronous Kubernetes REST client: get, list, create, update, patch, delete, watch.

One `Client` holds one aiohttp session (connections are reused) and a list of API servers.
It speaks plain Kubernetes REST, so it works against podns and against a real cluster.

Failover and retry contract:
- a request that cannot *connect* to a server is sent to the next server (for every verb:
  nothing reached the server);
- an idempotent request (GET, and the opening of a watch) that fails mid-way is retried on the
  next server; a write that broke after being sent raises `TransportError` (it may or may not
  have happened: the caller decides, usually by re-reading);
- GETs answered 429/503 are retried after `Retry-After` (capped), a few times.
When every server failed, `TransportError` is raised. Server answers >= 400 raise the matching
`podns.kube.errors.APIError`. No aiohttp exception leaves this module.

A watch's stream that ends cleanly (server `timeoutSeconds`, or no byte for WATCH_IDLE_TIMEOUT
on a watch with bookmarks) ends the iterator; a stream that breaks raises `TransportError`; an
ERROR event raises its APIError (`Gone` for 410). Resuming from the last resourceVersion is the
caller's job (the `Informer` does it).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import aiohttp
import orjson

from podns.kube import errors
from podns.kube._http import (
    CONNECT_ERRORS,
    TRANSPORT_ERRORS,
    WatchEvent,
    decode_body,
    encode_params,
    error_from,
    expect_object,
    meta_of,
    name_of,
    parse_retry_after,
    watch_event,
    watch_lines,
)
from podns.kube.config import Config, load_config
from podns.kube.resources import Resource

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PatchType = Literal["merge", "strategic", "json", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

#: seconds to wait for a TCP/TLS connection before trying the next server
CONNECT_TIMEOUT = 5.0
#: seconds a whole non-watch request may take (a list of thousands of objects fits)
REQUEST_TIMEOUT = 60.0
#: how often a GET answered 429/503 is retried, and the longest Retry-After honoured (seconds)
MAX_RETRY_AFTER_ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0
#: seconds of silence after which a watch with bookmarks is presumed dead (podns sends a bookmark
#: after 30 s of silence, Kubernetes about every minute); the watch then ends as if the server
#: had timed it out, so the caller re-watches from its last version, which fails fast if the
#: server is really gone
WATCH_IDLE_TIMEOUT = 90.0


def _user_agent() -> str:
    return f"podns-kube/0.1 (pid {os.getpid()})"


class Client:
    """Async client for one cluster (possibly several API servers). Use `async with` or call
    `close()`; a Client must be used from one event loop."""

    def __init__(self, config: Config, *, user_agent: str | None = None) -> None:
        self.config = config
        self._ssl = config.ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._current = 0  # index of the server that answered last
        self._user_agent = user_agent or _user_agent()

    @classmethod
    def from_kubeconfig(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        context: str | None = None,
        servers: list[str] | None = None,
    ) -> Client:
        """A client for the kubeconfig's (current) context, or (no `path`, in a pod) the
        in-cluster configuration; see `podns.kube.config.load_config`."""
        return cls(load_config(path, context, servers=servers))

    @property
    def namespace(self) -> str:
        """The kubeconfig context's default namespace."""
        return self.config.namespace

    @property
    def server(self) -> str:
        """The API server currently in use."""
        return self.config.servers[self._current]

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections. The client may not be used afterwards."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    # -- transport ---------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False,
                                             limit=100, enable_cleanup_closed=True)
            auth = None
            if self.config.username is not None and self.config.password is not None:
                auth = aiohttp.BasicAuth(self.config.username, self.config.password)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auth=auth,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                headers={"User-Agent": self._user_agent},
            )
        return self._session

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.config.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    def _advance(self) -> None:
        """Prefer the next server from now on."""
        self._current = (self._current + 1) % len(self.config.servers)

    def _servers_in_order(self) -> list[int]:
        n = len(self.config.servers)
        return [(self._current + i) % n for i in range(n)]

    async def _open(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None,
        body: bytes | None,
        headers: dict[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send one request, failing over between servers; returns the open response (the
        caller reads and releases it). Raises TransportError when no server answered."""
        idempotent = method == "GET"
        session = self._get_session()
        query = encode_params(params)
        failures: list[str] = []
        last_exc: BaseException | None = None
        for index in self._servers_in_order():
            url = self.config.servers[index] + path
            try:
                resp = await session.request(
                    method, url, params=query, data=body, headers=headers, timeout=timeout,
                    server_hostname=self.config.tls_server_name,
                )
            except CONNECT_ERRORS as exc:
                failures.append(f"{url}: {exc}")
                last_exc = exc
                continue
            except TRANSPORT_ERRORS as exc:
                failures.append(f"{url}: {exc!r}")
                last_exc = exc
                if idempotent:
                    continue
                raise errors.TransportError(f"{method} {url}: {exc!r}") from exc
            self._current = index
            return resp
        raise errors.TransportError(
            f"{method} {path}: no API server reachable ({'; '.join(failures)})"
        ) from last_exc

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        raw: bool = False,
    ) -> Any:
        """Send a request and decode the answer (JSON unless `raw`); raise APIError >= 400."""
        hdrs = self._headers(headers)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, sock_connect=CONNECT_TIMEOUT)
        attempt = 0
        broken = 0  # GETs whose answer broke mid-way, each retried on the next server
        while True:
            resp = await self._open(method, path, params=params, body=body, headers=hdrs,
                                    timeout=timeout)
            try:
                try:
                    payload = await resp.read()
                except TRANSPORT_ERRORS as exc:
                    if method == "GET" and broken + 1 < len(self.config.servers):
                        broken += 1
                        self._advance()
                        continue
                    raise errors.TransportError(f"{method} {path}: reading answer: {exc!r}") from exc
            finally:
                resp.release()
            if resp.status < 400:
                if raw:
                    return payload
                return decode_body(payload, resp.content_type)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if (method == "GET" and resp.status in (429, 503)
                    and attempt < MAX_RETRY_AFTER_ATTEMPTS):
                attempt += 1
                if resp.status == 503:
                    self._advance()  # an unavailable server: prefer another one next
                await asyncio.sleep(min(retry_after if retry_after is not None else 1.0,
                                        MAX_RETRY_AFTER))
                continue
            raise error_from(resp.status, payload, resp.content_type, retry_after)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """A raw request to `path` ("/api/v1/..."): returns the decoded JSON body (or the text
        when the answer is not JSON). Same failover, retry and error rules as every call."""
        body: bytes | None = None
        hdrs = dict(headers or {})
        if json is not None:
            body = orjson.dumps(json)
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
        return await self._call(method.upper(), path, params=params, body=body, headers=hdrs)

    # -- verbs -------------------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        """The object; raises NotFound when it does not exist."""
        return expect_object(await self._call("GET", resource.path(namespace, name)), "GET")

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
        resource_version: str | None = None,
    ) -> Obj:
        """One page of a List (`items`, `metadata.resourceVersion`, `metadata.continue`).
        `namespace` None lists across all namespaces."""
        params = {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_,
            "resourceVersion": resource_version,
        }
        return expect_object(await self._call("GET", resource.path(namespace), params=params), "GET")

    async def list_all(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = 500,
        resource_version: str | None = None,
        each: Callable[[Obj], Any] | None = None,
    ) -> Obj:
        """The whole List, following `continue` tokens; the result's `metadata` is the last
        page's (its resourceVersion is the snapshot's). A 410 on a continue token restarts the
        list from the beginning once, as client-go's pager does.

        `each`: the result's items are `each(item)`, applied as each page arrives, so a caller
        that keeps only a trimmed form of the objects (an informer with a transform) never holds
        the whole List parsed at once: its memory peaks at one page, not at every object."""
        restarted = False
        while True:
            items: list[Obj] = []
            token: str | None = None
            try:
                while True:
                    page = await self.list(
                        resource, namespace, label_selector=label_selector,
                        field_selector=field_selector, limit=limit, continue_=token,
                        resource_version=None if token else resource_version,
                    )
                    got = page.get("items") or []
                    items.extend(got if each is None else map(each, got))
                    meta = page.get("metadata") or {}
                    token = meta.get("continue") or None
                    if not token:
                        page["items"] = items
                        meta.pop("continue", None)
                        return page
            except errors.Gone:
                if restarted or token is None:
                    raise
                restarted = True

    async def create(
        self, resource: Resource, obj: Obj, namespace: str | None = None, *, dry_run: bool = False,
        name: str | None = None, subresource: str | None = None,
    ) -> Obj:
        """Create `obj` (namespace from the argument, else `obj.metadata.namespace`, else the
        kubeconfig context's); returns the stored object. Raises AlreadyExists, Invalid, ...
        With `name` and `subresource`, POST to that object's subresource instead (a TokenRequest
        to `serviceaccounts/<name>/token`, an Eviction) and return the answer."""
        ns = (namespace or meta_of(obj).get("namespace") or self.namespace) \
            if resource.namespaced else None
        params = {"dryRun": "All"} if dry_run else None
        path = resource.path(ns, name, subresource) if name and subresource else resource.path(ns)
        return await self._send("POST", path, obj, params=params)

    async def update(
        self,
        resource: Resource,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> Obj:
        """Replace `obj` (PUT). `metadata.resourceVersion`, when set, makes it conditional:
        Conflict means someone else wrote first (re-read and retry)."""
        meta = meta_of(obj)
        ns = (namespace or meta.get("namespace") or self.namespace) \
            if resource.namespaced else None
        path = resource.path(ns, name_of(obj), subresource)
        return await self._send("PUT", path, obj)

    async def update_status(self, resource: Resource, obj: Obj) -> Obj:
        """Replace the status of `obj` through the `/status` subresource."""
        return await self.update(resource, obj, subresource="status")

    async def patch(
        self,
        resource: Resource,
        name: str,
        body: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = "merge",
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Obj:
        """Patch an object. `body` is a dict (merge, strategic, apply) or a list of JSON-patch
        operations (json). Server-side apply ("apply") needs a `field_manager`."""
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r}") from None
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params: dict[str, Any] = {"fieldManager": field_manager}
        if force:
            params["force"] = "true"
        path = resource.path(namespace if resource.namespaced else None, name, subresource)
        return await self._send("PATCH", path, body, params=params, content_type=content_type)

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, str] | None = None,
    ) -> Obj:
        """Delete an object; returns what the server answered (the object, when deletion is
        graceful or blocked by finalizers, else a Success Status). Raises NotFound."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy is not None:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = preconditions
        path = resource.path(namespace if resource.namespaced else None, name)
        return await self._send("DELETE", path, options)

    async def _send(
        self,
        method: str,
        path: str,
        obj: Any,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        return expect_object(await self._call(method, path, params=params, body=orjson.dumps(obj),
                                        headers={"Content-Type": content_type}), method)

    # -- watch -------------------------------------------------------------------------------

    async def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Stream changes after `resource_version` (None or "0": the server's choice, starting
        with synthetic ADDED events for the current state). `on_open` is called once the server
        accepted the watch (before any event arrives). See the module docstring for how the
        stream ends."""
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        }
        path = resource.path(namespace)
        read_timeout = (timeout_seconds + 30.0) if timeout_seconds else None
        if allow_bookmarks:
            read_timeout = min(read_timeout or WATCH_IDLE_TIMEOUT, WATCH_IDLE_TIMEOUT)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT,
                                        sock_read=read_timeout)
        resp = await self._open("GET", path, params=params, body=None,
                                headers=self._headers(None), timeout=timeout)
        try:
            if resp.status >= 400:
                try:
                    payload = await resp.read()
                except TRANSPORT_ERRORS as exc:
                    raise errors.TransportError(f"watch {path}: {exc!r}") from exc
                raise error_from(resp.status, payload, resp.content_type,
                                  parse_retry_after(resp.headers.get("Retry-After")))
            if on_open is not None:
                on_open()
            async for line in watch_lines(resp, path, read_timeout):
                yield watch_event(line, path)
        finally:
            resp.close()


__all__ = ["PATCH_CONTENT_TYPES", "Client", "PatchType", "WatchEvent"]
