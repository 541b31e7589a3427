"""The generic resource storage: create, get, list, update, delete over the Store for any kind.

This is podns' `genericregistry.Store`: one code path for every kind, with everything
kind-specific behind the `Strategy` hooks (prepare, default, validate, admit/release,
graceful deletion). It owns the Kubernetes write rules that do not depend on the kind:

- server-set metadata (`objectmeta.py`), `generateName`, `dryRun` (everything but the store write);
- namespaced objects need their namespace to exist (404) and not be terminating (403);
- updates are compare-and-swap: a client `resourceVersion` that is stale is a 409 Conflict, an
  update without one (and every patch) is retried internally against the fresh object;
- deletion honours preconditions, finalizers, `gracePeriodSeconds` and `propagationPolicy`
  (Foreground/Orphan add the finalizers the garbage collector acts on); an object whose last
  finalizer is removed while it carries a `deletionTimestamp` is deleted by that update;
- objects over `MAX_OBJECT_BYTES` are refused with 413.

Errors are `ApiError`s (`podns.api.statuserror`); store errors are mapped here, never passed up.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from podns.api import statuserror
from podns.api.handlers import objectmeta
from podns.api.resources.base import AdmissionDenied, FieldError, ResourceType
from podns.objects.names import generate_name
from podns.objects.times import now_rfc3339
from podns.store import errors as store_errors
from podns.store.interface import Store

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Mutate = Callable[[Obj], Obj]

#: etcd's default request limit (1.5 MiB) bounds an object's size in Kubernetes
MAX_OBJECT_BYTES = 1536 * 1024
#: retries of an update without a client resourceVersion (and of patches) on a store conflict
UPDATE_RETRIES = 16
#: store page size when filtering a list by selectors
LIST_PAGE = 500
#: kinds whose DELETE answers the object rather than a Status (as kube-apiserver's registries)
RETURN_DELETED_OBJECT = frozenset({("", "pods"), ("", "services"), ("", "namespaces")})


@dataclass(slots=True)
class WriteOptions:
    """Query options shared by create/update/patch."""

    dry_run: bool = False
    field_manager: str | None = None
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    operation: str = "Update"  # managedFields operation: Update, or Apply (server-side apply)
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DeleteOptions:
    """A DeleteOptions body merged with its query parameters."""

    grace_period_seconds: int | None = None
    propagation_policy: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    dry_run: bool = False
    orphan_dependents: bool | None = None  # deprecated field, only kept for the response code


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def _encode_continue(at_rv: int, key: str) -> str:
    raw = orjson.dumps({"rv": at_rv, "start": key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise statuserror.bad_request("continue key is not valid: illegal base64 data") from None


class Rest:
    """CRUD for every served kind over one Store. `admission` is what `Strategy.admit` gets."""

    def __init__(self, store: Store, admission: Any) -> None:
        self.store = store
        self.admission = admission
        #: called with (rt, namespace) after a namespace-scoped object is written; set by the
        #: server to start namespace cleanup
        self.on_namespace_deleting: Callable[[str], Awaitable[None]] | None = None
        #: mutating admission of new Pods (the ServiceAccount plugin), after defaulting and before
        #: validation as in kube-apiserver; set by the server
        self.pod_admission: Callable[[Obj], Awaitable[None]] | None = None

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, rt: ResourceType, namespace: str | None, name: str) -> Obj:
        try:
            return await self.store.get(objectmeta.store_key(rt, namespace, name))
        except store_errors.NotFound:
            raise statuserror.not_found(rt.resource, name, rt.group) from None
        except store_errors.StoreError as exc:
            raise map_store_error(exc, rt, name) from exc

    async def list(
        self, rt: ResourceType, namespace: str | None, *,
        match: Callable[[Obj], bool] | None = None, limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        """A `<Kind>List` body; paginated by `limit` with an opaque `continue` token."""
        prefix = objectmeta.collection_prefix(rt, namespace)
        at_rv: int | None = None
        start: str | None = None
        if continue_token:
            at_rv, start = _decode_continue(continue_token)
            if not start.startswith(prefix):
                raise statuserror.bad_request("continue key is not valid: key does not match prefix")
        items: list[Obj] = []
        next_key: str | None = None
        try:
            done = False
            while not done:
                want = None if limit is None else (LIST_PAGE if match else limit - len(items))
                page = await self.store.list(prefix, limit=want, start_after=start, at_rv=at_rv)
                at_rv = page.rv
                for i, obj in enumerate(page.items):
                    if match is not None and not match(obj):
                        continue
                    items.append(obj)
                    if limit is not None and len(items) >= limit:
                        done = True
                        if i < len(page.items) - 1 or page.continue_key is not None:
                            next_key = objectmeta.store_key(
                                rt, (obj.get("metadata") or {}).get("namespace"), _name(obj))
                        break
                if page.continue_key is None:
                    done = True
                start = page.continue_key
        except store_errors.Expired:
            raise statuserror.expired(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter.") from None
        except store_errors.StoreError as exc:
            raise map_store_error(exc, rt, "") from exc
        list_meta: Obj = {"resourceVersion": str(at_rv)}
        if next_key is not None:
            list_meta["continue"] = _encode_continue(at_rv or 0, next_key)
        return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": list_meta,
                "items": items}

    # -- create --------------------------------------------------------------------------------

    async def create(self, rt: ResourceType, namespace: str | None, body: Obj,
                     opts: WriteOptions) -> Obj:
        """Create `body`; returns the stored object (or, for dryRun, what would be stored)."""
        obj: Obj = objectmeta.clone(body)
        check_type(obj, rt)
        md = obj.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise statuserror.bad_request("metadata must be an object")
        if rt.namespaced:
            body_ns = md.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise statuserror.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            md["namespace"] = namespace
            await self.require_namespace(namespace or "")
        else:
            md.pop("namespace", None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = generate_name(str(md["generateName"]))
        if not md.get("name"):
            raise statuserror.invalid(rt.kind, "", [FieldError(
                "metadata.name", "FieldValueRequired",
                "Required value: name or generateName is required")], rt.group)
        with malformed_as_400(rt):
            self.check_fields(rt, obj, opts)
            objectmeta.stamp_create(obj, rt)
            rt.strategy.prepare_for_create(obj)
            rt.strategy.default(obj)
        with malformed_as_400(rt):
            if self.pod_admission is not None and rt.kind == "Pod" and rt.group == "":
                await self.pod_admission(obj)
            errs = rt.strategy.validate(obj)
        if errs:
            raise statuserror.invalid(rt.kind, _name(obj), errs, rt.group)
        objectmeta.record_manager(obj, rt, opts.field_manager, opts.operation)
        check_size(obj)
        key = objectmeta.store_key(rt, namespace, _name(obj))
        if opts.dry_run:
            try:
                await self.store.get(key)
            except store_errors.NotFound:
                # admission runs as for a real create (RuntimeClass checks, a Service's cluster IPs
                # and ipFamilies appear in the answer), then gives back what it reserved
                await self._admit(rt, obj, None)
                await rt.strategy.release(obj, self.admission)
                return obj
            raise statuserror.already_exists(rt.resource, _name(obj), rt.group)
        await self._admit(rt, obj, None)
        try:
            return await self.store.create(key, obj)
        except store_errors.StoreError as exc:
            await rt.strategy.release(obj, self.admission)
            if isinstance(exc, store_errors.AlreadyExists):
                raise statuserror.already_exists(rt.resource, _name(obj), rt.group) from None
            raise map_store_error(exc, rt, _name(obj)) from exc

    async def _admit(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        """The kind's admission step: 422 for the fields it refuses, 403 when it refuses the
        write as a whole (AdmissionDenied)."""
        with malformed_as_400(rt):
            try:
                errs = await rt.strategy.admit(obj, old, self.admission)
            except AdmissionDenied as exc:
                raise statuserror.admission_forbidden(rt.resource, _name(obj), rt.group, str(exc)) from None
        if errs:
            raise statuserror.invalid(rt.kind, _name(obj), errs, rt.group)

    async def require_namespace(self, namespace: str) -> None:
        """404 unless the namespace exists; 403 while it terminates."""
        try:
            ns = await self.store.get(f"namespaces/{namespace}")
        except store_errors.NotFound:
            raise statuserror.not_found("namespaces", namespace) from None
        except store_errors.StoreError as exc:
            raise statuserror.unavailable(str(exc)) from exc
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            raise statuserror.ApiError(
                403, "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated", {"kind": "namespaces", "name": namespace,
                               "causes": [{"reason": "NamespaceTerminating",
                                           "message": f"namespace {namespace} is being "
                                           "terminated", "field": "metadata.namespace"}]})

    def check_fields(self, rt: ResourceType, obj: Obj, opts: WriteOptions) -> None:
        """fieldValidation: 400 (Strict) or warnings (Warn) for fields the kind does not know."""
        if opts.field_validation == "Ignore":
            return
        unknown = rt.strategy.unknown_fields(obj)
        if not unknown:
            return
        if opts.field_validation == "Strict":
            raise statuserror.bad_request("strict decoding error: " + ", ".join(
                f'unknown field "{path}"' for path in unknown))
        opts.warnings.extend(f'unknown field "{path}"' for path in unknown)

    # -- update --------------------------------------------------------------------------------

    async def update(
        self, rt: ResourceType, namespace: str | None, name: str, mutate: Mutate,
        opts: WriteOptions, *, subresource: str = "", operation: str = "Update",
        create: Callable[[], Awaitable[Obj]] | None = None,
    ) -> Obj:
        """Replace an object with `mutate(current)`, compare-and-swap on its resourceVersion.

        `mutate` gets a private copy of the stored object and returns the proposed object (a PUT
        body, or the result of a patch). A `metadata.resourceVersion` in the proposal that is
        not the stored one is a 409 Conflict; otherwise a concurrent write just makes us retry.
        `create` (server-side apply) is awaited instead when the object does not exist.
        """
        key = objectmeta.store_key(rt, namespace, name)
        for _attempt in range(UPDATE_RETRIES):
            try:
                old = await self.store.get(key)
            except store_errors.NotFound:
                if create is not None:
                    return await create()
                raise statuserror.not_found(rt.resource, name, rt.group) from None
            except store_errors.StoreError as exc:
                raise map_store_error(exc, rt, name) from exc
            new = mutate(objectmeta.clone(old))
            if not isinstance(new, dict):
                raise statuserror.bad_request(f"the result of the request is not a {rt.kind} object")
            check_type(new, rt)
            client_rv = str((new.get("metadata") or {}).get("resourceVersion") or "")
            new.setdefault("metadata", {})
            old_rv = objectmeta.rv_of(old)
            if client_rv and client_rv != str(old_rv):
                raise statuserror.conflict(rt.resource, name, rt.group)
            with malformed_as_400(rt):
                new = self._prepare_update(rt, namespace, name, new, old, opts, subresource,
                                           operation)
            if opts.dry_run:
                return new
            if _same_but_bookkeeping(new, old):
                return old  # no-op: no write, no new resourceVersion, no watch event
            if self._finalized(new):
                return await self._delete_now(rt, key, name, new, old_rv)
            await self._admit(rt, new, old)
            try:
                return await self.store.update(key, new, expected_rv=old_rv)
            except store_errors.Conflict:
                if client_rv:
                    raise statuserror.conflict(rt.resource, name, rt.group) from None
                continue
            except store_errors.NotFound:
                raise statuserror.not_found(rt.resource, name, rt.group) from None
            except store_errors.StoreError as exc:
                raise map_store_error(exc, rt, name) from exc
        raise statuserror.conflict(rt.resource, name, rt.group, "too many concurrent updates")

    def _prepare_update(self, rt: ResourceType, namespace: str | None, name: str, new: Obj,
                        old: Obj, opts: WriteOptions, subresource: str, operation: str) -> Obj:
        md = new.setdefault("metadata", {})
        if not isinstance(md, dict):
            raise statuserror.bad_request("metadata must be an object")
        if md.get("name") and md["name"] != name:
            raise statuserror.bad_request(
                f"the name of the object ({md['name']}) does not match the name on the URL "
                f"({name})")
        if rt.namespaced and md.get("namespace") and md["namespace"] != namespace:
            raise statuserror.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
        md["name"] = name
        if rt.namespaced:
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        self.check_fields(rt, new, opts)
        objectmeta.carry_over(new, old, rt)
        strategy = rt.strategy
        if subresource == "status":
            strategy.prepare_for_status_update(new, old)
        elif subresource not in ("binding", "finalize"):
            # binding sets the otherwise immutable spec.nodeName; finalize spec.finalizers
            strategy.prepare_for_update(new, old)
        strategy.default(new)
        errs = strategy.validate(new)
        if subresource not in ("binding", "finalize"):
            errs += strategy.validate_update(new, old)
        if errs:
            raise statuserror.invalid(rt.kind, name, errs, rt.group)
        old_gen = int((old.get("metadata") or {}).get("generation") or 1)
        md["generation"] = old_gen + 1 if strategy.spec_changed(new, old) else old_gen
        objectmeta.record_manager(new, rt, opts.field_manager, operation, subresource)
        check_size(new)
        return new

    @staticmethod
    def _finalized(obj: Obj) -> bool:
        """Whether an update left a deleting object with nothing holding it any more."""
        md = obj.get("metadata") or {}
        if obj.get("kind") == "Namespace" and (obj.get("spec") or {}).get("finalizers"):
            return False
        return bool(md.get("deletionTimestamp")) and not md.get("finalizers") and \
            not md.get("deletionGracePeriodSeconds")

    async def _delete_now(self, rt: ResourceType, key: str, name: str, obj: Obj,
                          expected_rv: int | None) -> Obj:
        try:
            gone = await self.store.delete(key, expected_rv=expected_rv)
        except store_errors.NotFound:
            raise statuserror.not_found(rt.resource, name, rt.group) from None
        except store_errors.Conflict:
            raise statuserror.conflict(rt.resource, name, rt.group) from None
        except store_errors.StoreError as exc:
            raise map_store_error(exc, rt, name) from exc
        await rt.strategy.release(gone, self.admission)
        return gone

    # -- delete --------------------------------------------------------------------------------

    async def delete(self, rt: ResourceType, namespace: str | None, name: str,
                     opts: DeleteOptions) -> tuple[Obj, bool]:
        """Delete (or start deleting) an object. Returns (object, gone_now)."""
        key = objectmeta.store_key(rt, namespace, name)
        for _attempt in range(UPDATE_RETRIES):
            obj = await self.get(rt, namespace, name)
            md = obj.setdefault("metadata", {})
            if opts.uid and opts.uid != md.get("uid"):
                raise statuserror.conflict(
                    rt.resource, name, rt.group,
                    f"Precondition failed: UID in precondition: {opts.uid}, UID in object meta: "
                    f"{md.get('uid')}")
            if opts.resource_version and opts.resource_version != md.get("resourceVersion"):
                raise statuserror.conflict(
                    rt.resource, name, rt.group,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{opts.resource_version}, ResourceVersion in object meta: "
                    f"{md.get('resourceVersion')}")
            old_rv = objectmeta.rv_of(obj)
            grace = rt.strategy.deletion_grace_seconds(obj, opts.grace_period_seconds)
            finalizers = list(md.get("finalizers") or [])
            policy = opts.propagation_policy
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            is_namespace = rt.resource == "namespaces" and not rt.group
            pending = bool(finalizers) or grace > 0 or is_namespace
            if not pending:
                if opts.dry_run:
                    return obj, True
                try:
                    gone = await self._delete_now(rt, key, name, obj, old_rv)
                except statuserror.ApiError as exc:
                    if exc.code == 409 and not opts.resource_version:
                        continue
                    raise
                return gone, True
            # graceful: mark for deletion and leave the rest to finalizers / the node agent
            already = md.get("deletionTimestamp")
            new = objectmeta.clone(obj)
            nmd = new["metadata"]
            if finalizers:
                nmd["finalizers"] = finalizers
            if not already:
                nmd["deletionTimestamp"] = now_rfc3339()
            if grace > 0:
                cur = nmd.get("deletionGracePeriodSeconds")
                nmd["deletionGracePeriodSeconds"] = grace if cur is None else min(cur, grace)
            else:
                nmd.pop("deletionGracePeriodSeconds", None)
            if is_namespace:
                # Terminating until the namespace cleanup has removed its contents
                spec_fin = new.setdefault("spec", {}).setdefault("finalizers", [])
                if not already and "kubernetes" not in spec_fin:
                    spec_fin.append("kubernetes")
                new.setdefault("status", {})["phase"] = "Terminating"
            if new == obj:
                return obj, False
            if opts.dry_run:
                return new, False
            try:
                stored = await self.store.update(key, new, expected_rv=old_rv)
            except store_errors.Conflict:
                continue
            except store_errors.StoreError as exc:
                raise map_store_error(exc, rt, name) from exc
            if rt.resource == "namespaces" and not rt.group and self.on_namespace_deleting:
                await self.on_namespace_deleting(name)
            return stored, False
        raise statuserror.conflict(rt.resource, name, rt.group, "too many concurrent updates")

    async def delete_collection(self, rt: ResourceType, namespace: str | None,
                                match: Callable[[Obj], bool] | None,
                                opts: DeleteOptions) -> Obj:
        """Delete every selected object; returns the List of what was deleted or marked."""
        listing = await self.list(rt, namespace, match=match)
        done: list[Obj] = []
        for obj in listing["items"]:
            md = obj.get("metadata") or {}
            try:
                gone, _ = await self.delete(rt, md.get("namespace"), md.get("name", ""), opts)
            except statuserror.ApiError as exc:
                if exc.code == 404:
                    continue
                raise
            done.append(gone)
        return {"kind": rt.list_kind, "apiVersion": rt.api_version,
                "metadata": {"resourceVersion": listing["metadata"]["resourceVersion"]},
                "items": done}


def _same_but_bookkeeping(new: Obj, old: Obj) -> bool:
    """Whether an update changes nothing but bookkeeping (managedFields timestamps, Update
    entries), as kube-apiserver then skips the write: level-triggered controllers rewrite
    unchanged status all the time, and each write would wake every watcher."""
    if new.keys() != old.keys():
        return False
    for key, value in new.items():
        if key != "metadata":
            if value != old[key]:
                return False
            continue
        a, b = dict(value), dict(old.get("metadata") or {})
        for md in (a, b):
            md["managedFields"] = _appliers(md.get("managedFields"))
            md.pop("resourceVersion", None)
        if a != b:
            return False
    return True


def _appliers(entries: Any) -> list[tuple[str, str, bytes]]:
    """What of managedFields is state rather than bookkeeping: the appliers' field sets."""
    if not isinstance(entries, list):
        return []
    return sorted((str(e.get("manager")), str(e.get("subresource", "")),
                   orjson.dumps(e.get("fieldsV1"), option=orjson.OPT_SORT_KEYS))
                  for e in entries if isinstance(e, dict) and e.get("operation") == "Apply")


@contextlib.contextmanager
def malformed_as_400(rt: ResourceType) -> Iterator[None]:
    """Strategy hooks assume a well-typed object (kube-apiserver's decoder rejects a wrong JSON
    type before any hook runs, with a 400); a hook tripping over one becomes that 400 here."""
    try:
        yield
    except (TypeError, AttributeError, ValueError, KeyError, IndexError) as exc:
        log.debug("%s hook failed on a malformed object", rt.kind, exc_info=True)
        raise statuserror.bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
            f"malformed object: {type(exc).__name__}: {exc}") from None


def check_type(obj: Obj, rt: ResourceType) -> None:
    """400 when a body names another apiVersion or kind than the URL addresses."""
    md = obj.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise statuserror.bad_request(
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: metadata '
            "must be an object")
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version not in (None, "") and api_version != rt.api_version:
        raise statuserror.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})")
    if kind not in (None, "") and kind != rt.kind:
        raise statuserror.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")


def check_size(obj: Obj) -> None:
    """413 for objects larger than etcd would store."""
    if len(orjson.dumps(obj)) > MAX_OBJECT_BYTES:
        raise statuserror.too_large(MAX_OBJECT_BYTES)


def map_store_error(exc: store_errors.StoreError, rt: ResourceType, name: str) -> statuserror.ApiError:
    """The Status for a store error not handled where it was raised."""
    if isinstance(exc, store_errors.NotFound):
        return statuserror.not_found(rt.resource, name, rt.group)
    if isinstance(exc, store_errors.AlreadyExists):
        return statuserror.already_exists(rt.resource, name, rt.group)
    if isinstance(exc, store_errors.Conflict):
        return statuserror.conflict(rt.resource, name, rt.group)
    if isinstance(exc, store_errors.Expired):
        return statuserror.expired(str(exc) or "too old resource version")
    if isinstance(exc, store_errors.TooLarge):
        # kube-apiserver answers etcd's "request is too large" with 413 as well
        return statuserror.ApiError(413, "RequestEntityTooLarge",
                               f"Request entity too large: {exc or 'object too large'}")
    if isinstance(exc, store_errors.Invalid):
        # an object the store cannot hold (not representable as JSON): the request's fault
        return statuserror.bad_request(str(exc) or "the object cannot be stored")
    return statuserror.unavailable(str(exc) or "the store is unavailable")

