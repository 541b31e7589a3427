"""`FakeClient`: the `Client` API over an in-memory object set, recording every action.

For controller unit tests, as Kubernetes' fake clientset with `expectActions`: run a
controller (or an `Informer`, whose watch works here) against a `FakeClient`, then assert the
exact writes it made (`client.writes()` -> `[Action("create", "endpointslices", ...)]`).

What it models: resourceVersions (one counter), uid/creationTimestamp/generation on create,
optimistic concurrency on update (Conflict), AlreadyExists/NotFound, label and field selectors,
paging, merge / strategic (as merge) / apply (as merge) / JSON patches, the `status`
subresource (with annotations), generateName, watches from a version (410 Gone after
`compact()`), injectable failures through reactors. What it does not: validation, defaulting,
finalizers, garbage collection, graceful deletion. Objects handed out are copies: mutating them
never changes the fake's state (as over HTTP).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from podns.kube import errors
from podns.kube.client import PatchType, WatchEvent
from podns.kube.resources import Resource
from podns.objects import apistatus
from podns.objects.apistatus import Status
from podns.objects.jsonpatch import PatchError, json_patch
from podns.objects.mergepatch import merge_patch
from podns.objects.names import generate_name
from podns.objects.selectors import field_path_value, parse_field_selector, parse_label_selector
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]
_Key = tuple[str, str, str, str]  # group, plural, namespace, name


@dataclass(frozen=True, slots=True)
class Action:
    """One call made on the fake: `verb` is get, list, watch, create, update, patch or delete;
    `resource` the plural ("pods"); `body` the object / patch sent (a copy), if any."""

    verb: str
    resource: str
    namespace: str | None = None
    name: str | None = None
    body: Any = None
    subresource: str | None = None
    patch_type: str | None = None

    def __repr__(self) -> str:
        where = "/".join(p for p in (self.namespace, self.name, self.subresource) if p)
        return f"Action({self.verb} {self.resource} {where})"


#: a reactor gets the action; returning a value answers it, raising fails it, None falls through
Reactor = Callable[[Action], Any]

READ_VERBS = frozenset({"get", "list", "watch"})


@dataclass
class _Watcher:
    group: str
    plural: str
    namespace: str | None
    #: (event type, object), the Status of an ERROR event, or None for the end of the watch
    queue: asyncio.Queue[tuple[str, Obj] | Status | None] = field(default_factory=asyncio.Queue)


class FakeClient:
    """An in-memory stand-in for `podns.kube.client.Client` (same method signatures)."""

    def __init__(self, *objects: tuple[Resource, Obj], namespace: str = "default") -> None:
        self.namespace = namespace
        self.actions: list[Action] = []
        self._objects: dict[_Key, Obj] = {}
        self._rv = itertools.count(1)
        self._last_rv = 0
        self._history: list[tuple[int, str, str, str | None, str, Obj]] = []
        self._compacted = 0
        self._watchers: list[_Watcher] = []
        self._reactors: list[tuple[str, str, Reactor]] = []
        for resource, obj in objects:
            self.seed(resource, obj)

    # -- test helpers ------------------------------------------------------------------------

    def seed(self, resource: Resource, obj: Obj) -> Obj:
        """Store an object as if created, without recording an action."""
        return self._create(resource, copy.deepcopy(obj), None)

    def prepend_reactor(self, verb: str, resource: str, fn: Reactor) -> None:
        """Intercept `verb` ("*" for all) on `resource` (a plural, or "*"): `fn(action)` returns
        a result, raises (e.g. `errors.ServerError`), or returns None to let the fake answer."""
        self._reactors.insert(0, (verb, resource, fn))

    def writes(self) -> list[Action]:
        """The recorded actions that change state (not get/list/watch)."""
        return [a for a in self.actions if a.verb not in READ_VERBS]

    def clear_actions(self) -> None:
        self.actions.clear()

    def objects(self, resource: Resource, namespace: str | None = None) -> list[Obj]:
        """Copies of the stored objects of a resource (all namespaces when None)."""
        return [copy.deepcopy(o) for (g, p, ns, _), o in sorted(self._objects.items())
                if (g, p) == (resource.group, resource.plural)
                and (namespace is None or ns == namespace)]

    def compact(self) -> None:
        """Forget the event history: watches from older versions get 410 Gone."""
        self._compacted = self._last_rv
        self._history.clear()

    def close_watches(self) -> None:
        """End every open watch cleanly (as a server-side timeout does)."""
        for w in self._watchers:
            w.queue.put_nowait(None)

    def inject_watch_error(self, status: Status) -> None:
        """Deliver an ERROR event with this Status to every open watch."""
        for w in self._watchers:
            w.queue.put_nowait(copy.deepcopy(status))

    async def close(self) -> None:
        self.close_watches()

    async def __aenter__(self) -> FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- internals ---------------------------------------------------------------------------

    def _react(self, action: Action) -> Obj | None:
        """`_record` for the typed verbs, whose reactors answer with the object (or list) itself:
        anything but a dict is a mistake in the test, said at once."""
        reacted = self._record(action)
        if reacted is not None and not isinstance(reacted, dict):
            raise errors.KubeError(f"a {action.verb} reactor must return an object, got {reacted!r}")
        return reacted

    def _record(self, action: Action) -> Any:
        self.actions.append(action)
        for verb, resource, fn in self._reactors:
            if verb in ("*", action.verb) and resource in ("*", action.resource):
                result = fn(action)
                if result is not None:
                    return result
        return None

    def _key(self, resource: Resource, namespace: str | None, name: str) -> _Key:
        resource.path(namespace, name)  # the same ValueError as the real client
        return (resource.group, resource.plural, (namespace or "") if resource.namespaced else "",
                name)

    def _bump(self, obj: Obj) -> None:
        self._last_rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self._last_rv)

    def _emit(self, resource: Resource, etype: str, obj: Obj) -> None:
        ns = obj["metadata"].get("namespace")
        entry = (self._last_rv, resource.group, resource.plural, ns, etype, copy.deepcopy(obj))
        self._history.append(entry)
        for w in self._watchers:
            if (w.group, w.plural) == (resource.group, resource.plural) and \
                    w.namespace in (None, ns):
                w.queue.put_nowait((etype, copy.deepcopy(obj)))

    def _existing(self, resource: Resource, namespace: str | None, name: str) -> tuple[_Key, Obj]:
        """The stored object (not a copy) and its key; NotFound as the server's."""
        key = self._key(resource, namespace, name)
        cur = self._objects.get(key)
        if cur is None:
            raise self._not_found(resource, name)
        return key, cur

    def _not_found(self, resource: Resource, name: str) -> errors.NotFound:
        return errors.NotFound(apistatus.failure(
            404, "NotFound", f'{resource} "{name}" not found',
            {"name": name, "group": resource.group, "kind": resource.plural}))

    def _create(self, resource: Resource, obj: Obj, namespace: str | None) -> Obj:
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            meta["namespace"] = namespace or meta.get("namespace") or self.namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = generate_name(meta["generateName"])
        if not meta.get("name"):
            raise errors.Invalid(apistatus.failure(422, "Invalid", "metadata.name: Required value"))
        key = self._key(resource, meta.get("namespace"), meta["name"])
        if key in self._objects:
            raise errors.AlreadyExists(apistatus.failure(
                409, "AlreadyExists", f'{resource} "{meta["name"]}" already exists',
                {"name": meta["name"], "kind": resource.plural}))
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_rfc3339())
        meta["generation"] = 1
        self._bump(obj)
        self._objects[key] = obj
        self._emit(resource, "ADDED", obj)
        return copy.deepcopy(obj)

    def _store_update(self, resource: Resource, key: _Key, new: Obj) -> Obj:
        old = self._objects[key]
        strip = ("metadata", "status", "kind", "apiVersion")
        if {k: v for k, v in new.items() if k not in strip} != \
                {k: v for k, v in old.items() if k not in strip}:
            new["metadata"]["generation"] = int(old["metadata"].get("generation") or 1) + 1
        else:
            new["metadata"]["generation"] = old["metadata"].get("generation", 1)
        for fixed in ("uid", "creationTimestamp", "namespace", "name"):
            if fixed in old["metadata"]:
                new["metadata"][fixed] = old["metadata"][fixed]
        self._bump(new)
        self._objects[key] = new
        self._emit(resource, "MODIFIED", new)
        return copy.deepcopy(new)

    # -- the Client API ----------------------------------------------------------------------

    async def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        reacted = self._react(Action("get", resource.plural, namespace, name))
        if reacted is not None:
            return reacted
        return copy.deepcopy(self._existing(resource, namespace, name)[1])

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
        reacted = self._react(Action("list", resource.plural, namespace, None,
                                      {"labelSelector": label_selector,
                                       "fieldSelector": field_selector}))
        if reacted is not None:
            return reacted
        items = [o for o in self.objects(resource, namespace)
                 if _matches(o, label_selector, field_selector)]
        start = int(continue_ or 0)
        end = start + limit if limit else len(items)
        meta: Obj = {"resourceVersion": str(self._last_rv)}
        if end < len(items):
            meta["continue"] = str(end)
        return {"kind": f"{resource.kind}List", "apiVersion": resource.api_version,
                "metadata": meta, "items": items[start:end]}

    async def list_all(self, resource: Resource, namespace: str | None = None, *,
                       label_selector: str | None = None, field_selector: str | None = None,
                       limit: int | None = None, resource_version: str | None = None,
                       each: Callable[[Obj], Any] | None = None) -> Obj:
        listed = await self.list(resource, namespace, label_selector=label_selector,
                                 field_selector=field_selector)
        if each is not None:
            listed["items"] = [each(item) for item in listed["items"]]
        return listed

    async def create(self, resource: Resource, obj: Obj, namespace: str | None = None, *,
                     dry_run: bool = False) -> Obj:
        body = copy.deepcopy(obj)
        ns = (namespace or (body.get("metadata") or {}).get("namespace") or self.namespace) \
            if resource.namespaced else None
        name = (body.get("metadata") or {}).get("name")
        reacted = self._react(Action("create", resource.plural, ns, name, copy.deepcopy(obj)))
        if reacted is not None:
            return reacted
        if dry_run:
            return body
        return self._create(resource, body, ns)

    async def update(self, resource: Resource, obj: Obj, namespace: str | None = None, *,
                     subresource: str | None = None) -> Obj:
        body = copy.deepcopy(obj)
        meta = body.get("metadata") or {}
        ns = (namespace or meta.get("namespace") or self.namespace) if resource.namespaced \
            else None
        name = meta.get("name") or ""
        reacted = self._react(Action("update", resource.plural, ns, name, copy.deepcopy(obj),
                                      subresource))
        if reacted is not None:
            return reacted
        key, cur = self._existing(resource, ns, name)
        want = meta.get("resourceVersion")
        if want and want != cur["metadata"]["resourceVersion"]:
            raise errors.Conflict(apistatus.failure(
                409, "Conflict", f'Operation cannot be fulfilled on {resource} "{name}": the object '
                                 "has been modified; please apply your changes to the latest version "
                                 "and try again"))
        if subresource == "status":
            new = copy.deepcopy(cur)
            new["status"] = body.get("status")
            if meta.get("annotations"):  # as the API server (the Deployment revision rides here)
                new["metadata"]["annotations"] = meta["annotations"]
        else:
            new = body
            new.setdefault("apiVersion", resource.api_version)
            new.setdefault("kind", resource.kind)
        return self._store_update(resource, key, new)

    async def update_status(self, resource: Resource, obj: Obj) -> Obj:
        return await self.update(resource, obj, subresource="status")

    async def patch(self, resource: Resource, name: str, body: Any,
                    namespace: str | None = None, *, patch_type: PatchType = "merge",
                    subresource: str | None = None, field_manager: str | None = None,
                    force: bool = False) -> Obj:
        ns = namespace if resource.namespaced else None
        resource.path(ns, name)
        reacted = self._react(Action("patch", resource.plural, ns, name, copy.deepcopy(body),
                                      subresource, patch_type))
        if reacted is not None:
            return reacted
        key, cur = self._existing(resource, ns, name)
        if patch_type == "json":
            try:
                new = json_patch(cur, body)
            except PatchError as exc:
                raise errors.api_error(errors.status_from_body(exc.code, str(exc))) from None
        else:
            new = merge_patch(copy.deepcopy(cur), body)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(cur)
            new["status"] = status
        want = (new.get("metadata") or {}).get("resourceVersion")
        if want and want != cur["metadata"]["resourceVersion"]:
            raise errors.Conflict(apistatus.failure(409, "Conflict", "the object has been modified"))
        return self._store_update(resource, key, new)

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: dict[str, str] | None = None) -> Obj:
        ns = namespace if resource.namespaced else None
        resource.path(ns, name)
        options = {k: v for k, v in (("gracePeriodSeconds", grace_period_seconds),
                                     ("propagationPolicy", propagation_policy),
                                     ("preconditions", preconditions)) if v is not None}
        reacted = self._react(Action("delete", resource.plural, ns, name, options or None))
        if reacted is not None:
            return reacted
        key, cur = self._existing(resource, ns, name)
        for field_name, want in (preconditions or {}).items():
            if want and cur["metadata"].get(field_name) != want:
                raise errors.Conflict(apistatus.failure(409, "Conflict",
                                                        f"Precondition failed: {field_name}"))
        del self._objects[key]
        self._bump(cur)
        self._emit(resource, "DELETED", cur)
        return dict(apistatus.success(
            details={"name": name, "kind": resource.plural, "uid": cur["metadata"]["uid"]}))

    async def watch(self, resource: Resource, namespace: str | None = None, *,
                    resource_version: str | None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True, on_open: Callable[[], None] | None = None,
                    ) -> AsyncIterator[WatchEvent]:
        reacted = self._record(Action("watch", resource.plural, namespace, None,
                                      {"resourceVersion": resource_version}))
        if reacted is not None:
            raise errors.KubeError(f"watch reactors may only raise, got {reacted!r}")
        watcher = _Watcher(resource.group, resource.plural, namespace)
        if resource_version in (None, "", "0"):
            for obj in self.objects(resource, namespace):
                watcher.queue.put_nowait(("ADDED", obj))
        else:
            since = int(resource_version)
            if since < self._compacted:
                raise errors.Gone(apistatus.failure(
                    410, "Expired", f"too old resource version: {since} ({self._compacted})"))
            for rv, g, p, ns, etype, obj in self._history:
                if rv > since and (g, p) == (resource.group, resource.plural) and \
                        namespace in (None, ns):
                    watcher.queue.put_nowait((etype, copy.deepcopy(obj)))
        self._watchers.append(watcher)
        if on_open is not None:
            on_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds if timeout_seconds else None
        try:
            while True:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    return
                if item is None:
                    return
                if not isinstance(item, tuple):
                    raise errors.api_error(item)
                etype, obj = item
                if _matches(obj, label_selector, field_selector):
                    yield WatchEvent(etype, obj)
        finally:
            self._watchers.remove(watcher)

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        reacted = self._record(Action(method.lower(), path, body=kwargs.get("json")))
        if reacted is not None:
            return reacted
        raise errors.NotFound(apistatus.failure(404, "NotFound",
                                                f"FakeClient serves no raw path {path}"))


def _matches(obj: Obj, label_selector: str | None, field_selector: str | None) -> bool:
    if label_selector and not parse_label_selector(label_selector).matches(
            (obj.get("metadata") or {}).get("labels")):
        return False
    return not field_selector or parse_field_selector(field_selector).matches(
        lambda path: field_path_value(obj, path))


__all__ = ["Action", "FakeClient", "Reactor"]
