"""HTTP handlers of resource requests: turn a parsed request into a `Rest` call and a response.

One entry point, `ResourceHandlers.handle`, serves every resource URL: it parses the path
(`requestinfo.parse_path`), authorizes the verb, decodes query options and bodies, and dispatches
on (verb, subresource). Kind-specific behaviour stays in the Strategy; storage rules in `Rest`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from podns.api import statuserror
from podns.api.encoding import codec, tables
from podns.api.handlers import (
    authorization,
    escalation,
    eviction,
    fieldsets,
    objectmeta,
    patch,
    reviews,
    serviceaccounttoken,
    subresources,
)
from podns.api.handlers.requestinfo import (
    CONNECT_SUBRESOURCES,
    RequestInfo,
    parse_bool,
    parse_int,
    parse_path,
    parse_rv,
)
from podns.api.handlers.rest import RETURN_DELETED_OBJECT, DeleteOptions, Rest, WriteOptions
from podns.api.handlers.selection import parse as parse_selectors
from podns.api.handlers.watch import EventEncoder, WatchRequest, serve_watch
from podns.api.handlers.watchmux import WatchMux
from podns.api.resources.base import ResourceType
from podns.api.resources.registry import REVIEW_KINDS, Registry
from podns.api.resources.scale import SCALE
from podns.objects import apistatus
from podns.store import errors as store_errors
from podns.store.interface import WatchStream

Obj = dict[str, Any]

#: the authenticated user of a request, set by the app's auth middleware
USER = web.RequestKey("user", authorization.UserInfo)
#: the authenticated user of a request that impersonates `USER` (for the audit log)
IMPERSONATOR = web.RequestKey("impersonator", authorization.UserInfo)

_PATCH_FNS: dict[str, Callable[[Any, Any], Any]] = {
    "application/merge-patch+json": patch.merge_patch,
    "application/json-patch+json": patch.json_patch,
    "application/strategic-merge-patch+json": patch.strategic_merge_patch,
    "application/apply-patch+yaml": patch.apply_patch,
}
_FIELD_VALIDATION = ("Strict", "Warn", "Ignore")
#: seconds a list or watch waits for a resourceVersion the store has not reached (kube-apiserver's
#: watch cache blocks 3 s in waitUntilFreshAndBlock), and how often it looks again meanwhile
FRESH_WAIT = 3.0
FRESH_POLL = 0.05


def json_response(body: Any, code: int = 200, *, content_type: str = codec.JSON,
                  warnings: list[str] | None = None) -> web.Response:
    """A JSON response (optionally with `Warning: 299` headers)."""
    resp = web.Response(body=codec.dumps(body), status=code)
    resp.headers["Content-Type"] = content_type
    for w in warnings or ():
        # quoted as a JSON string (kube-apiserver: strconv.Quote): a quote, backslash, control or
        # non-ASCII character a client sent (an unknown field's name) is escaped, never a broken
        # header (aiohttp drops the connection on a CR or LF in one)
        resp.headers.add("Warning", "299 - " + json.dumps(w))
    return resp


def _table(rt: ResourceType, objects: list[Obj], query: Mapping[str, str], *, list_rv: int,
           with_columns: bool = True) -> Obj:
    """The `meta.k8s.io/v1 Table` of `objects` a `kubectl get` asked for; an `includeObject`
    other than None, Metadata (default) or Object is a 400."""
    include = query.get("includeObject") or "Metadata"
    if include not in tables.INCLUDE_OBJECT:
        raise statuserror.bad_request(f'includeObject parameter unsupported: "{include}"')
    return tables.render_table(rt, objects, include_object=include, with_columns=with_columns,
                               list_rv=list_rv)


class ResourceHandlers:
    """Serves /api/v1/... and /apis/<g>/<v>/... resource URLs."""

    def __init__(self, rest: Rest, registry: Registry, mux: WatchMux | None = None, *,
                 node_tls: ssl.SSLContext | None = None,
                 authorizer: authorization.Authorizer | None = None,
                 sa_signer: serviceaccounttoken.Signer | None = None) -> None:
        self.rest = rest
        #: signs ServiceAccount tokens (serviceaccounts/<name>/token); None: not served
        self.sa_signer = sa_signer
        #: RBAC; None (unit tests without authentication) allows everything
        self.authorizer = authorizer
        #: TLS towards node agents (see podns.api.handlers.podlog)
        self.node_tls = node_tls or ssl.create_default_context()
        self.registry = registry
        self.encoder = EventEncoder()
        self.mux = mux

    def authorize(self, user: authorization.UserInfo, info: RequestInfo) -> None:
        """403 (RBAC's wording) unless the authorizer allows `user` this request. A namespace
        addressed by name is its own namespace, as in kube-apiserver's RequestInfo."""
        if self.authorizer is None:
            return
        rt = info.rt
        namespace = info.namespace or (info.name if rt.resource == "namespaces" and rt.group == ""
                                       else None)
        attrs = authorization.Attributes(user, info.verb, namespace=namespace or "",
                                         group=rt.group, resource=rt.resource,
                                         subresource=info.subresource, name=info.name or "")
        if not self.authorizer.authorize(attrs):
            why = self.authorizer.explain(attrs)
            if why.verdict == authorization.DENY:
                raise statuserror.admission_forbidden(rt.resource, info.name or "", rt.group, why.reason)
            raise statuserror.forbidden(user.name, info.verb, rt.resource, rt.group,
                                        info.namespace, info.name, info.subresource, why.reason)

    def stored(self, rt: ResourceType) -> ResourceType:
        """The served type whose version objects of `rt`'s kind are stored in: `rt` itself
        unless its Strategy converts (a kind served in several versions, e.g. autoscaling/v1
        HorizontalPodAutoscalers stored as autoscaling/v2). Handlers hand the stored type to
        `Rest` and convert bodies in and answers out with `rt.strategy`."""
        wanted = rt.strategy.storage_api_version
        if not wanted:
            return rt
        group, _, version = wanted.rpartition("/")
        return self.registry.lookup(group, version, rt.resource) or rt

    @staticmethod
    def shown(rt: ResourceType, obj: Obj) -> Obj:
        """A stored object as the requested version shows it."""
        return rt.strategy.from_storage(obj) if rt.strategy.storage_api_version else obj

    def shown_list(self, rt: ResourceType, body: Obj) -> Obj:
        """A `<Kind>List` of stored objects as the requested version shows it."""
        if not rt.strategy.storage_api_version:
            return body
        return {**body, "apiVersion": rt.api_version,
                "items": [self.shown(rt, o) for o in body.get("items") or []]}

    async def open_watch(self, prefix: str, from_rv: int) -> WatchStream:
        """A store watch, shared per resource when the store needs it (see watchmux.py)."""
        if self.mux is not None:
            return await self.mux.watch(prefix, from_rv)
        return self.rest.store.watch(prefix, from_rv)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        info = parse_path(request.path, request.method, query, self.registry.lookup)
        user = request.get(USER, authorization.ADMIN)
        self.authorize(user, info)
        if info.rt.kind in REVIEW_KINDS:
            if info.verb != "create" or info.subresource:
                raise statuserror.method_not_allowed()
            # a SelfSubjectReview asks nothing: its body (protobuf from kubectl 1.32+) is not read
            body = {} if info.rt.kind == "SelfSubjectReview" else await self._body(request)
            return json_response(reviews.answer(info.rt, body, user, self.authorizer,
                                                namespace=info.namespace or ""), 201)
        if info.rt.namespaced and info.namespace is None and info.verb not in (
                "list", "watch"):
            raise statuserror.no_such_resource()
        verb, sub = info.verb, info.subresource
        if verb == "list":
            return await self._list(request, info)
        if verb == "watch":
            return await self._watch(request, info)
        if verb == "get":
            return await self._get(request, info)
        if sub in CONNECT_SUBRESOURCES:
            return await self._connect(request, info)
        if verb == "create":
            return await self._create(request, info)
        if verb == "update":
            return await self._update(request, info)
        if verb == "patch":
            return await self._patch(request, info)
        if verb == "delete" and not sub:
            return await self._delete(request, info)
        if verb == "deletecollection":
            return await self._delete_collection(request, info)
        raise statuserror.method_not_allowed()

    # -- reads ---------------------------------------------------------------------------------

    async def _get(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        obj = await self.rest.get(self.stored(info.rt), info.namespace, info.name or "")
        if info.subresource == "log":
            return await self._pod_log(request, obj)
        if info.subresource == "scale":
            scale = subresources.to_scale(obj)
            if codec.wants_table(request.headers.get("Accept")):
                return json_response(_table(SCALE, [scale], request.query, list_rv=objectmeta.rv_of(obj)),
                                     content_type=codec.TABLE_CT)
            return json_response(scale)
        if info.subresource not in ("", "status"):
            raise statuserror.method_not_allowed()
        if codec.wants_table(request.headers.get("Accept")):
            return json_response(_table(info.rt, [obj], request.query, list_rv=objectmeta.rv_of(obj)),
                                 content_type=codec.TABLE_CT)
        return json_response(self.shown(info.rt, obj))

    async def _connect(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        """pods/<name>/exec, attach, portforward: a stream proxied to the pod's node agent."""
        from podns.api.handlers import podstream

        pod = await self.rest.get(info.rt, info.namespace, info.name or "")
        return await podstream.proxy_stream(request, info.subresource, pod, await self._pod_node(pod),
                                            self.node_tls)

    async def _pod_node(self, pod: Obj) -> Obj | None:
        """The Node `pod` is bound to (None: unscheduled, or the Node does not exist)."""
        node = None
        node_name = (pod.get("spec") or {}).get("nodeName")
        nodes = self.registry.lookup("", "v1", "nodes")
        if node_name and nodes is not None:
            try:
                node = await self.rest.get(nodes, None, node_name)
            except statuserror.ApiError as exc:
                if exc.code != 404:
                    raise
        return node

    async def _pod_log(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        """pods/<name>/log: proxied from the pod's node agent (podns.api.handlers.podlog)."""
        from podns.api.handlers import podlog

        return await podlog.proxy_pod_log(request, pod, await self._pod_node(pod), self.node_tls)

    async def _list(self, request: web.Request, info: RequestInfo) -> web.Response:
        q = request.query
        match = parse_selectors(q.get("labelSelector"), q.get("fieldSelector"), info.rt.strategy)
        limit = parse_int(q, "limit")
        if limit is not None and limit < 0:
            raise statuserror.bad_request(f'invalid value for limit: "{limit}": must be greater than '
                                          "or equal to 0")
        await self._wait_fresh(parse_rv(q.get("resourceVersion")))
        body = await self.rest.list(self.stored(info.rt), info.namespace, match=match,
                                    limit=limit if limit and limit > 0 else None,
                                    continue_token=q.get("continue") or None)
        if codec.wants_table(request.headers.get("Accept")):
            table = _table(info.rt, body["items"], q,
                           list_rv=int(body["metadata"]["resourceVersion"]))
            if "continue" in body["metadata"]:
                table["metadata"]["continue"] = body["metadata"]["continue"]
            return json_response(table, content_type=codec.TABLE_CT)
        return json_response(self.shown_list(info.rt, body))

    async def _watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        q = request.query
        match = parse_selectors(q.get("labelSelector"), q.get("fieldSelector"), info.rt.strategy)
        from_rv = parse_rv(q.get("resourceVersion"))
        timeout = parse_int(q, "timeoutSeconds")
        await self._wait_fresh(from_rv)
        initial: list[Obj] | None = None
        seed: set[str] | None = None
        if not from_rv:
            listing = await self.rest.list(self.stored(info.rt), info.namespace, match=match)
            initial = listing["items"]
            from_rv = int(listing["metadata"]["resourceVersion"])
            if match is not None:
                seed = {self._key(info, o) for o in initial}
        elif match is not None:
            seed = await self._matching_keys_at(info, match, from_rv)
        render = None
        if codec.wants_table(request.headers.get("Accept")):
            rt = info.rt

            def render(obj: Obj, first: bool) -> Obj:
                return _table(rt, [obj], q, list_rv=objectmeta.rv_of(obj), with_columns=first)

        watch = WatchRequest(
            rt=info.rt, prefix=objectmeta.collection_prefix(info.rt, info.namespace),
            from_rv=from_rv, initial=initial, match=match, seed_keys=seed,
            timeout=float(timeout) if timeout else None,
            bookmarks=parse_bool(q.get("allowWatchBookmarks")), render=render,
            convert=info.rt.strategy.from_storage if info.rt.strategy.storage_api_version else None)
        return await serve_watch(request, watch, open_watch=self.open_watch, encoder=self.encoder)

    async def _wait_fresh(self, rv: int | None) -> None:
        """Wait up to FRESH_WAIT seconds for the store to reach `rv` (a list or watch from a
        resourceVersion it has not seen yet, e.g. one from another API server of the cluster);
        then 504 "Too large resource version", as kube-apiserver's watch cache does."""
        if not rv:
            return
        deadline = time.monotonic() + FRESH_WAIT
        while True:
            try:
                current = await self.rest.store.current_rv()
            except store_errors.StoreError as exc:
                raise statuserror.unavailable(str(exc)) from exc
            if current >= rv:
                return
            if time.monotonic() >= deadline:
                raise statuserror.too_large_resource_version(rv, current)
            await asyncio.sleep(FRESH_POLL)

    @staticmethod
    def _key(info: RequestInfo, obj: Obj) -> str:
        md = obj.get("metadata") or {}
        return objectmeta.store_key(info.rt, md.get("namespace"), md.get("name", ""))

    async def _matching_keys_at(self, info: RequestInfo, match: Callable[[Obj], bool],
                                rv: int) -> set[str]:
        """Keys of the objects a selector matched at revision `rv` (what a client resuming a
        filtered watch from `rv` has). An unavailable revision leaves the set empty: the
        store's watch then answers 410 for it anyway."""
        keys: set[str] = set()
        prefix = objectmeta.collection_prefix(info.rt, info.namespace)
        start: str | None = None
        try:
            while True:
                page = await self.rest.store.list(prefix, limit=1000, start_after=start,
                                                  at_rv=rv)
                keys.update(self._key(info, o) for o in page.items if match(o))
                if page.continue_key is None:
                    return keys
                start = page.continue_key
        except store_errors.StoreError:
            return keys

    # -- writes --------------------------------------------------------------------------------

    @staticmethod
    def _write_options(request: web.Request) -> WriteOptions:
        q = request.query
        fv = q.get("fieldValidation") or "Warn"
        if fv not in _FIELD_VALIDATION:
            raise statuserror.bad_request(
                f'fieldValidation parameter unsupported: "{fv}" (expected one of Strict, Warn, '
                'Ignore)')
        dry = q.getall("dryRun", [])
        for value in dry:
            if value != "All":
                raise statuserror.bad_request(f'Invalid value: "{value}": supported values: "All"')
        return WriteOptions(dry_run=bool(dry), field_manager=q.get("fieldManager"),
                            field_validation=fv)

    async def _body(self, request: web.Request, *, allow_list: bool = False,
                    expect: tuple[str, str] | None = None) -> Any:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise statuserror.too_large(codec.MAX_BODY_BYTES) from None
        return codec.decode_body(raw, request.headers.get("Content-Type"), allow_list=allow_list,
                                 expect=expect)

    async def _create(self, request: web.Request, info: RequestInfo) -> web.Response:
        opts = self._write_options(request)
        rt = info.rt
        body = await self._body(request, expect=None if info.subresource else (
            rt.api_version, rt.kind))
        user = request.get(USER, authorization.ADMIN)
        escalation.check(self.authorizer, user, rt, info.namespace or "", body)
        front = self.authorizer.front if self.authorizer is not None else None
        refused = front.admit_create(user, rt.resource, rt.group, body) if front is not None else None
        if refused is not None:
            name = (body.get("metadata") or {}).get("name") if isinstance(body, dict) else None
            raise statuserror.admission_forbidden(rt.resource, str(name or ""), rt.group, refused)
        if info.subresource == "binding":
            await self.rest.update(info.rt, info.namespace, info.name or "",
                                   lambda pod: subresources.bind(pod, body), opts,
                                   subresource="binding")
            return json_response(apistatus.success(code=201), 201)
        if info.subresource == "eviction":
            budgets = self.registry.lookup("policy", "v1", "poddisruptionbudgets")
            return json_response(await eviction.evict(self.rest, info.rt, budgets, info.namespace or "",
                                                      info.name or "", body), 201)
        if info.subresource == "token":
            if self.sa_signer is None:
                raise statuserror.no_such_resource()
            return json_response(await serviceaccounttoken.issue(
                self.sa_signer, self.rest.store, info.namespace or "", info.name or "", body), 201)
        stored = self.stored(rt)
        if stored is not rt:
            body = rt.strategy.to_storage(body)
        obj = await self.rest.create(stored, info.namespace, body, opts)
        return json_response(self.shown(rt, obj), 201, warnings=opts.warnings)

    async def _update(self, request: web.Request, info: RequestInfo) -> web.Response:
        opts = self._write_options(request)
        rt, name, sub = info.rt, info.name or "", info.subresource
        body = await self._body(request, expect=None if sub not in ("", "status") else (
            rt.api_version, rt.kind))
        if sub == "scale":
            obj = await self.rest.update(rt, info.namespace, name,
                                         lambda cur: subresources.from_scale(cur, body), opts,
                                         subresource="scale")
            return json_response(subresources.to_scale(obj))
        if sub == "finalize":
            def finalize(cur: Obj) -> Obj:
                cur.setdefault("spec", {})["finalizers"] = (body.get("spec") or {}).get(
                    "finalizers") or []
                return cur

            obj = await self.rest.update(rt, info.namespace, name, finalize, opts,
                                         subresource="finalize")
            return json_response(obj)

        user = request.get(USER, authorization.ADMIN)

        stored = self.stored(rt)

        def replace(cur: Obj) -> Obj:
            new: Obj = copy.deepcopy(body)
            new.setdefault("apiVersion", rt.api_version)
            new.setdefault("kind", rt.kind)
            if stored is not rt:
                new = rt.strategy.to_storage(new)
            if not sub:
                escalation.check(self.authorizer, user, rt, info.namespace or "", new, cur)
            return new

        created = False

        async def create() -> Obj:
            """Create-on-update (kube-apiserver's AllowCreateOnUpdate): only for the kinds that
            allow it, only on the main resource, and only without a resourceVersion (an update
            of a specific version of an object that does not exist is a 404, as upstream)."""
            nonlocal created
            md = body.get("metadata") if isinstance(body, dict) else None
            md = md if isinstance(md, dict) else {}
            if sub or not rt.strategy.allow_create_on_update or md.get("resourceVersion"):
                raise statuserror.not_found(rt.resource, name, rt.group)
            if md.get("name") not in (None, "", name):
                raise statuserror.bad_request(
                    f"the name of the object ({md['name']}) does not match the name on the URL "
                    f"({name})")
            new = replace(body)
            new.setdefault("metadata", {})["name"] = name
            obj = await self.rest.create(stored, info.namespace, new, opts)
            created = True
            return obj

        obj = await self.rest.update(stored, info.namespace, name, replace, opts, subresource=sub,
                                     create=create)
        return json_response(self.shown(rt, obj), 201 if created else 200, warnings=opts.warnings)

    async def _patch(self, request: web.Request, info: RequestInfo) -> web.Response:
        ct = codec.media_type(request.headers.get("Content-Type"))
        fn = _PATCH_FNS.get(ct)
        if fn is None:
            raise statuserror.unsupported_media_type(ct)
        opts = self._write_options(request)
        body = await self._body(request, allow_list=ct == "application/json-patch+json")
        rt, name, sub = info.rt, info.name or "", info.subresource
        is_apply = ct == "application/apply-patch+yaml"
        if is_apply and request.query.get("fieldManager") in (None, ""):
            raise statuserror.bad_request(
                "PATCH /apply requires a non-empty fieldManager query parameter")
        if request.query.get("force") is not None and not is_apply:
            raise statuserror.bad_request("force is only supported for apply patches")

        manager = request.query.get("fieldManager") or ""
        if is_apply and not sub:
            fn = lambda cur, applied: fieldsets.apply(cur, applied, manager)  # noqa: E731

        user = request.get(USER, authorization.ADMIN)
        stored = self.stored(rt)

        def apply(cur: Obj) -> Obj:
            old = copy.deepcopy(cur) if rt.group == authorization.RBAC_GROUP and not sub else None
            try:
                if sub == "scale":
                    return subresources.from_scale(cur, fn(subresources.to_scale(cur), body))
                if stored is not rt:  # patched as the requested version shows the object
                    return rt.strategy.to_storage(fn(self.shown(rt, cur), body))
                new = fn(cur, body)
            except patch.PatchError as exc:
                if exc.code == 422:
                    raise statuserror.ApiError(422, "Invalid", str(exc)) from None
                raise statuserror.bad_request(str(exc)) from None
            except (TypeError, AttributeError, ValueError, KeyError) as exc:
                # a patch that does not fit the object's shape (kube-apiserver: 400 as well)
                raise statuserror.bad_request(f"unable to apply the patch: {exc}") from None
            if old is not None:
                escalation.check(self.authorizer, user, rt, info.namespace or "", new, old)
            return new

        created = False

        async def create() -> Obj:
            nonlocal created
            if not is_apply or sub:
                raise statuserror.not_found(rt.resource, name, rt.group)
            new = copy.deepcopy(body)
            md = new.setdefault("metadata", {})
            if md.get("name") not in (None, name):
                raise statuserror.bad_request(
                    f"the name of the object ({md['name']}) does not match the name on the URL "
                    f"({name})")
            md["name"] = name
            fieldsets.set_fields(new, manager, fieldsets.field_set(body))
            opts.operation = "Apply"
            if stored is not rt:
                new = rt.strategy.to_storage(new)
            obj = await self.rest.create(stored, info.namespace, new, opts)
            created = True
            return obj

        obj = await self.rest.update(stored, info.namespace, name, apply, opts, subresource=sub,
                                     operation="Apply" if is_apply else "Update",
                                     create=create)
        if sub == "scale":
            return json_response(subresources.to_scale(obj))
        return json_response(self.shown(rt, obj), 201 if created else 200, warnings=opts.warnings)

    async def _delete_options(self, request: web.Request) -> DeleteOptions:
        q = request.query
        body: Obj = {}
        raw = await request.read()
        if raw.strip():
            body = codec.decode_body(raw, request.headers.get("Content-Type"))
        pre = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds")
        q_grace = parse_int(q, "gracePeriodSeconds")
        if q_grace is not None:
            grace = q_grace
        if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
            raise statuserror.bad_request("gracePeriodSeconds must be an integer")
        policy = q.get("propagationPolicy") or body.get("propagationPolicy")
        if not policy and body.get("orphanDependents") is not None:
            policy = "Orphan" if body.get("orphanDependents") else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise statuserror.ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: '
                                  f'propagationPolicy: Unsupported value: "{policy}": supported '
                                  'values: "Foreground", "Background", "Orphan", "nil"')
        dry = q.getall("dryRun", []) or body.get("dryRun") or []
        orphan = body.get("orphanDependents")
        return DeleteOptions(grace_period_seconds=grace, propagation_policy=policy,
                             orphan_dependents=orphan if isinstance(orphan, bool) else None,
                             uid=pre.get("uid"), resource_version=pre.get("resourceVersion"),
                             dry_run=bool(dry))

    async def _delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        opts = await self._delete_options(request)
        rt, name = info.rt, info.name or ""
        obj, gone = await self.rest.delete(self.stored(rt), info.namespace, name, opts)
        obj = self.shown(rt, obj)
        if not gone:
            # kube-apiserver answers 202 only for the deprecated orphanDependents=false; graceful
            # and finalizer-held deletions are a 200 with the object
            return json_response(obj, 202 if opts.orphan_dependents is False else 200)
        if (rt.group, rt.resource) in RETURN_DELETED_OBJECT:
            return json_response(obj)
        return json_response(statuserror.success(rt.resource, name,
                                            (obj.get("metadata") or {}).get("uid", ""), rt.group))

    async def _delete_collection(self, request: web.Request, info: RequestInfo) -> web.Response:
        q = request.query
        match = parse_selectors(q.get("labelSelector"), q.get("fieldSelector"), info.rt.strategy)
        opts = await self._delete_options(request)
        body = await self.rest.delete_collection(self.stored(info.rt), info.namespace, match, opts)
        return json_response(self.shown_list(info.rt, body))

