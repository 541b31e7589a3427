"""The garbage collector: ownerReferences with background, foreground and orphan deletion.

Kubernetes' contract, split with the API server: on DELETE the server either removes the object
(background, the default) or, for `propagationPolicy: Foreground` / `Orphan`, sets
`deletionTimestamp` and adds the `foregroundDeletion` / `orphan` finalizer and keeps the object
while finalizers remain. This collector does the rest:

- background: an object all of whose owners are gone is deleted (an owner is gone when no object
  of that kind, name and uid exists: the cache says so and a live GET confirms it, since deleting
  on a stale cache is unrecoverable); dangling references next to live owners are removed;
- foreground: the dependents of an owner carrying `foregroundDeletion` are deleted (in the
  foreground themselves, so whole trees go bottom-up); once none is left, the finalizer is
  removed and the server completes the owner's deletion;
- orphan: the references to an owner carrying `orphan` are removed from its dependents, then the
  finalizer.

Only the kinds in `WATCHED` take part; references to other kinds are never treated as dangling
(we cannot tell), so their dependents are left alone. Queue items are `(resource plural,
"ns/name")`; a sync raises to retry, e.g. on a Conflict while editing finalizers.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from typing import Any, cast

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import (
    CONFIGMAPS,
    CONTROLLERREVISIONS,
    CRONJOBS,
    DAEMONSETS,
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    JOBS,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    SERVICES,
    STATEFULSETS,
    Resource,
)
from podns.objects import Obj, join_key, meta_of, name_of, namespace_of, object_key

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
#: the kinds whose owner references the collector follows
WATCHED: tuple[Resource, ...] = (PODS, SERVICES, ENDPOINTS, ENDPOINTSLICES, STATEFULSETS,
                                 CONTROLLERREVISIONS, DEPLOYMENTS, REPLICASETS, DAEMONSETS, JOBS, CRONJOBS,
                                 PERSISTENTVOLUMECLAIMS, CONFIGMAPS, NODES, REPLICATIONCONTROLLERS)
#: index of objects by the uids of their owners
BY_OWNER = "owner-uid"

def _owner_uids(obj: Obj) -> list[str]:
    return [str(r.get("uid")) for r in meta_of(obj).get("ownerReferences") or [] if r.get("uid")]


def finalizers_of(obj: Mapping[str, Any]) -> list[str]:
    return list(meta_of(obj).get("finalizers") or [])


class GarbageCollector(workerloop.Controller):
    """Deletes dependents of deleted owners; implements foreground and orphan propagation."""

    name = "garbage-collector"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers,
                 resources: tuple[Resource, ...] = WATCHED) -> None:
        super().__init__()
        self.client = client
        self.by_plural: dict[str, Resource] = {r.plural: r for r in resources}
        self.by_kind: dict[tuple[str, str], Resource] = {}
        self.informers: dict[str, Informer] = {}
        for res in resources:
            group = res.group
            self.by_kind[(group, res.kind)] = res
            informer = informers.get(res)
            try:
                informer.add_index(BY_OWNER, _owner_uids)
            except ValueError:
                pass
            self.informers[res.plural] = informer
            informer.add_handler(on_add=self._handler(res), on_update=self._update_handler(res),
                                 on_delete=self._delete_handler(res))

    # -- handlers: enqueue only ------------------------------------------------------------------

    def _handler(self, res: Resource) -> Any:
        def on_add(obj: Obj) -> None:
            if meta_of(obj).get("ownerReferences") or self._finalizing(obj):
                self.enqueue((res.plural, object_key(obj)))
        return on_add

    def _update_handler(self, res: Resource) -> Any:
        on_add = self._handler(res)

        def on_update(old: Obj, new: Obj) -> None:
            if (meta_of(old).get("ownerReferences") != meta_of(new).get("ownerReferences")
                    or self._finalizing(new)):
                on_add(new)
        return on_update

    def _delete_handler(self, res: Resource) -> Any:
        def on_delete(obj: Obj) -> None:
            self._enqueue_dependents(str(meta_of(obj).get("uid", "")))
            for ref in meta_of(obj).get("ownerReferences") or []:  # a foreground owner may be done
                plural = self._plural_of(ref)
                if plural:
                    ns = namespace_of(obj) if self.by_plural[plural].namespaced else ""
                    self.enqueue((plural, join_key(ns, str(ref.get("name") or ""))))
        return on_delete

    def _enqueue_dependents(self, uid: str) -> None:
        for dep_res, dep in self.dependents(uid):
            self.enqueue((dep_res.plural, object_key(dep)))

    @staticmethod
    def _finalizing(obj: Obj) -> bool:
        return bool(meta_of(obj).get("deletionTimestamp")) and bool(
            {FOREGROUND, ORPHAN} & set(finalizers_of(obj)))

    def dependents(self, uid: str) -> list[tuple[Resource, Obj]]:
        """Cached objects that list `uid` among their owners."""
        if not uid:
            return []
        return [(self.by_plural[p], o) for p, inf in self.informers.items()
                for o in inf.by_index(BY_OWNER, uid)]

    # -- sync -----------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        plural, okey = cast(tuple[str, str], key)
        res = self.by_plural[plural]
        obj = self.informers[plural].get(okey)
        if obj is None:
            return  # gone
        finalizers = finalizers_of(obj)
        if meta_of(obj).get("deletionTimestamp") and ORPHAN in finalizers:
            await self._orphan_dependents(res, obj)
            return
        if meta_of(obj).get("deletionTimestamp") and FOREGROUND in finalizers:
            await self._delete_dependents(res, obj)
            return
        await self._collect_if_dangling(res, obj)

    async def _owner_state(self, ref: Mapping[str, Any], namespace: str) -> Obj | None:
        """The live owner named by `ref`, or None when it is gone (uid mismatch counts as gone).
        Raises LookupError for kinds we do not know (never treated as gone)."""
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        res = self.by_kind.get((group, str(ref.get("kind", ""))))
        if res is None:
            raise LookupError(ref.get("kind"))
        ns = namespace if res.namespaced else None
        cached = self.informers[res.plural].get(join_key(ns or "", str(ref.get("name") or "")))
        if cached is not None and meta_of(cached).get("uid") == ref.get("uid"):
            return cached
        try:
            live = await self.client.get(res, str(ref.get("name")), ns)
        except errors.NotFound:
            return None
        return live if meta_of(live).get("uid") == ref.get("uid") else None

    async def _collect_if_dangling(self, res: Resource, obj: Obj) -> None:
        refs = meta_of(obj).get("ownerReferences") or []
        if not refs or meta_of(obj).get("deletionTimestamp"):
            return
        dangling, foreground_owner = [], False
        for ref in refs:
            try:
                owner = await self._owner_state(ref, namespace_of(obj))
            except LookupError:
                continue  # unknown kind: assume it exists
            if owner is None:
                dangling.append(ref)
            elif meta_of(owner).get("deletionTimestamp") and FOREGROUND in finalizers_of(owner):
                foreground_owner = True
                self.enqueue((self._plural_of(ref), object_key(owner)))
        ns, name = namespace_of(obj), name_of(obj)
        if dangling and len(dangling) == len(refs):
            log.info("garbage-collecting %s %s: all owners gone", res.kind, object_key(obj))
            await self._delete(res, name, ns or None, "Background")
        elif dangling:
            keep = [r for r in refs if r not in dangling]
            await self._patch_refs(res, obj, keep)
        elif foreground_owner:
            await self._delete(res, name, ns or None, "Foreground")

    def _plural_of(self, ref: Mapping[str, Any]) -> str:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        res = self.by_kind.get((group, str(ref.get("kind", ""))))
        return res.plural if res else ""

    async def _delete_dependents(self, res: Resource, owner: Obj) -> None:
        deps = self.dependents(str(meta_of(owner).get("uid", "")))
        remaining = False
        for dep_res, dep in deps:
            remaining = True
            if meta_of(dep).get("deletionTimestamp"):
                continue
            ns, name = namespace_of(dep), name_of(dep)
            await self._delete(dep_res, name, ns or None, "Foreground")
        if not remaining:
            await self._remove_finalizer(res, owner, FOREGROUND)

    async def _orphan_dependents(self, res: Resource, owner: Obj) -> None:
        uid = str(meta_of(owner).get("uid", ""))
        for dep_res, dep in self.dependents(uid):
            keep = [r for r in meta_of(dep).get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_refs(dep_res, dep, keep)
        await self._remove_finalizer(res, owner, ORPHAN)

    async def _delete(self, res: Resource, name: str, ns: str | None, policy: str) -> None:
        try:
            await self.client.delete(res, name, ns, propagation_policy=policy)
        except errors.NotFound:
            pass

    async def _patch_refs(self, res: Resource, obj: Obj, refs: list[Obj]) -> None:
        ns, name = namespace_of(obj), name_of(obj)
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": meta_of(obj).get("resourceVersion")}}
        try:
            await self.client.patch(res, name, patch, ns or None)
        except errors.NotFound:
            pass

    async def _remove_finalizer(self, res: Resource, obj: Obj, finalizer: str) -> None:
        ns, name = namespace_of(obj), name_of(obj)
        keep = [f for f in finalizers_of(obj) if f != finalizer]
        patch = {"metadata": {"finalizers": keep or None,
                              "resourceVersion": meta_of(obj).get("resourceVersion")}}
        try:
            await self.client.patch(res, name, patch, ns or None)
        except errors.NotFound:
            pass


__all__ = ["FOREGROUND", "ORPHAN", "GarbageCollector"]
