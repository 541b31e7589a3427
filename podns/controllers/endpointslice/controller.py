"""The EndpointSlice controller: informers -> queue of Service keys -> `sync` -> slice writes.

Event handlers only enqueue "ns/name" keys of Services: a Service change enqueues itself; a pod
change enqueues every Service of its namespace whose selector matches the old or the new labels;
a managed slice change enqueues its Service (so a user editing or deleting a managed slice gets it
put back). `sync` re-reads the Service, its pods and its slices from the caches, asks the pure
reconciler for a plan and applies it here, all writes of one sync in parallel, failures
aggregated and retried with back-off.

Stale caches: right after this controller writes a slice, its own informer may not have seen the
write yet, and reconciling against that view would create duplicates. Like Kubernetes'
`endpointSliceTracker`, we remember the resourceVersion of every write per Service and skip a
sync (looking again shortly) until the cache has caught up.

Services without a selector are left alone: their slices are the user's. When a Service is
deleted, its managed slices are deleted here too (the garbage collector would, via the owner
reference, but DNS should not wait for it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable

from podns.controllers import _indexes, workerloop
from podns.controllers.endpointslice.reconciler import (
    DEFAULT_MAX_ENDPOINTS_PER_SLICE,
    MANAGED_BY,
    Plan,
    reconcile,
)
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import ENDPOINTSLICES, NODES, PODS, SERVICES
from podns.objects import (
    Obj,
    join_key,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    split_key,
)
from podns.objects.wellknown import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, ZONE_LABEL

log = logging.getLogger(__name__)

#: index of managed slices by the key of their Service
BY_SERVICE = "service"


#: seconds after which an unseen write no longer blocks syncs (the slice may have been changed
#: or deleted by someone else in between; the watch is the usual way we learn it)
EXPECTATION_TIMEOUT = 5.0


def _rv(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


class EndpointSliceController(workerloop.Controller):
    """Keeps every selector Service's EndpointSlices equal to its matching pods."""

    name = "endpointslice-controller"
    workers = 4

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None,
                 max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        self.slices = informers.get(ENDPOINTSLICES, label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}")
        _indexes.index_services(self.services)
        _indexes.index_pods(self.pods)
        _indexes.ensure(self.slices, BY_SERVICE, _slice_service_key)
        #: service key -> {slice name: (resourceVersion we wrote or None when we deleted it,
        #: monotonic time of the write)}
        self._expected: dict[str, dict[str, tuple[str | None, float]]] = {}
        #: number of slice writes (create + update + delete), for benchmarks
        self.writes = 0
        self.services.add_handler(on_add=self._on_service, on_update=lambda _o, n: self._on_service(n),
                                  on_delete=self._on_service)
        self.pods.add_handler(on_add=self.on_pod_add, on_update=self.on_pod_update,
                              on_delete=self.on_pod_add)
        self.slices.add_handler(on_add=self._on_slice, on_update=lambda _o, n: self._on_slice(n),
                                on_delete=self._on_slice_delete)
        self.nodes.add_handler(on_update=self.on_node_update)

    # -- event handlers: enqueue only ------------------------------------------------------------

    def _on_service(self, svc: Obj) -> None:
        self.enqueue(object_key(svc))

    def on_pod_add(self, pod: Obj) -> None:
        for svc in _indexes.services_for_pod(self.services, pod):
            self.enqueue(object_key(svc))

    def on_pod_update(self, old: Obj, new: Obj) -> None:
        keys = {object_key(s) for s in _indexes.services_for_pod(self.services, new)}
        if labels_of(old) != labels_of(new):
            keys.update(object_key(s) for s in _indexes.services_for_pod(self.services, old))
        for key in keys:
            self.enqueue(key)

    def _on_slice(self, sl: Obj) -> None:
        for key in _slice_service_key(sl):
            self.enqueue(key)

    def _on_slice_delete(self, sl: Obj) -> None:
        for key in _slice_service_key(sl):
            # seen gone: whatever we wrote to it before is behind us
            self._expected.get(key, {}).pop(name_of(sl), None)
            self.enqueue(key)

    def on_node_update(self, old: Obj, new: Obj) -> None:
        if labels_of(old).get(ZONE_LABEL) != labels_of(new).get(ZONE_LABEL):
            for pod in self.pods.list():
                if (pod.get("spec") or {}).get("nodeName") == name_of(new):
                    self.on_pod_add(pod)

    # -- sync -------------------------------------------------------------------------------------

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        ns, _ = split_key(key)
        existing = self.slices.by_index(BY_SERVICE, key)
        if not self._cache_caught_up(key, existing):
            raise workerloop.StaleCache(key)
        svc = self.services.get(key)
        if svc is None or meta_of(svc).get("deletionTimestamp"):
            await self._apply(key, Plan(delete=[dict(s) for s in existing]))
            self._expected.pop(key, None)
            return  # gone: nothing to retry
        selector = (svc.get("spec") or {}).get("selector")
        if not selector or (svc.get("spec") or {}).get("type") == "ExternalName":
            return  # selector-less (the user's slices) or ExternalName (no endpoints): not ours
        pods = _indexes.pods_for_selector(self.pods, ns, selector)
        nodes = {}
        for pod in pods:
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and node_name not in nodes:
                node = self.nodes.get(node_name)
                if node is not None:
                    nodes[node_name] = node
        plan = reconcile(svc, pods, existing, nodes=nodes,
                         max_endpoints_per_slice=self.max_endpoints_per_slice)
        if plan:
            try:
                await self._apply(key, plan)
            except ExceptionGroup as exc:
                if self.recorder is not None and not exc.subgroup(errors.Conflict):
                    message = f"Error updating Endpoint Slices for Service {key}: {exc.exceptions[0]}"
                    self.recorder.event(svc, WARNING, "FailedToUpdateEndpointSlices", message)
                raise

    def _cache_caught_up(self, key: str, cached: list[Obj]) -> bool:
        expected = self._expected.get(key)
        if not expected:
            return True
        by_name = {name_of(s): s for s in cached}
        now = time.monotonic()
        for slice_name, (want_rv, written) in list(expected.items()):
            have = by_name.get(slice_name)
            if now - written > EXPECTATION_TIMEOUT:
                log.debug("%s: cache never showed our write of slice %s; going on", key, slice_name)
                ok = True
            elif want_rv is None:
                ok = have is None
            else:
                have_rv = meta_of(have).get("resourceVersion") if have else None
                ok = have_rv == want_rv or (
                    (_rv(have_rv) or 0) >= (_rv(want_rv) or 0) > 0 and have is not None)
            if ok:
                del expected[slice_name]
            else:
                return False
        return True

    async def _apply(self, key: str, plan: Plan) -> None:
        """Apply `plan` (all writes in parallel); remember what we wrote for the stale-cache
        check. Deleting something already gone is success."""
        expected = self._expected.setdefault(key, {})

        async def create(obj: Obj) -> None:
            created = await self.client.create(ENDPOINTSLICES, obj, namespace_of(obj))
            expected[name_of(created)] = (meta_of(created).get("resourceVersion"), time.monotonic())

        async def update(obj: Obj) -> None:
            updated = await self.client.update(ENDPOINTSLICES, obj)
            expected[name_of(updated)] = (meta_of(updated).get("resourceVersion"), time.monotonic())

        async def delete(obj: Obj) -> None:
            try:
                await self.client.delete(ENDPOINTSLICES, name_of(obj), namespace_of(obj))
            except errors.NotFound:
                pass
            expected[name_of(obj)] = (None, time.monotonic())

        writes = [create(o) for o in plan.create] + [update(o) for o in plan.update]
        writes += [delete(o) for o in plan.delete]
        self.writes += len(writes)
        await workerloop.apply_all(writes)


def _slice_service_key(sl: Obj) -> list[str]:
    service = labels_of(sl).get(SERVICE_NAME_LABEL)
    return [join_key(namespace_of(sl), service)] if service else []


