"""The legacy Endpoints controller: one `Endpoints` object per selector Service.

Same shape as the EndpointSlice controller (shared informers, Service keys, pure reconciler):
a Service or pod change enqueues the Service; `sync` computes the desired object and writes it
only when it differs (create, or a conditional PUT; a Conflict is retried with back-off). When
the Service is deleted its Endpoints object goes too, as in Kubernetes (Endpoints carry no owner
reference). Services without a selector are left alone: their Endpoints belong to the user.
"""

from __future__ import annotations

from collections.abc import Hashable

from podns.controllers import _indexes, workerloop
from podns.controllers.endpoints.reconciler import desired, merged_for_update, needs_write
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import ENDPOINTS, PODS, SERVICES
from podns.objects import (
    Obj,
    meta_of,
    object_key,
    split_key,
)


class EndpointsController(workerloop.Controller):
    """Keeps the `Endpoints` object of every selector Service current."""

    name = "endpoints-controller"
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.services = informers.get(SERVICES)
        self.pods = informers.get(PODS)
        self.endpoints = informers.get(ENDPOINTS)
        _indexes.index_services(self.services)
        _indexes.index_pods(self.pods)
        self.writes = 0
        self.services.add_handler(on_add=self._on_object, on_update=lambda _o, n: self._on_object(n),
                                  on_delete=self._on_object)
        self.endpoints.add_handler(on_delete=self._on_object,
                                   on_update=lambda _o, n: self._on_object(n))
        self.pods.add_handler(on_add=self._on_pod, on_update=self._on_pod_update, on_delete=self._on_pod)

    def _on_object(self, obj: Obj) -> None:
        self.enqueue(object_key(obj))

    def _services_for(self, pod: Obj) -> list[str]:
        return [object_key(s) for s in _indexes.services_for_pod(self.services, pod)]

    def _on_pod(self, pod: Obj) -> None:
        for key in self._services_for(pod):
            self.enqueue(key)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        for key in {*self._services_for(old), *self._services_for(new)}:
            self.enqueue(key)

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        ns, name = split_key(key)
        svc = self.services.get(key)
        existing = self.endpoints.get(key)
        if svc is None:
            if existing is not None and not self.services.get(key):
                try:
                    self.writes += 1
                    await self.client.delete(ENDPOINTS, name, ns)
                except errors.NotFound:
                    pass
            return  # gone
        selector = (svc.get("spec") or {}).get("selector")
        if not selector or (svc.get("spec") or {}).get("type") == "ExternalName":
            return  # selector-less (the user's Endpoints) or ExternalName: not ours
        pods = _indexes.pods_for_selector(self.pods, ns, selector)
        want = desired(svc, pods)
        if not needs_write(existing, want):
            return
        self.writes += 1
        if existing is None:
            try:
                await self.client.create(ENDPOINTS, want, ns)
            except errors.AlreadyExists:
                raise workerloop.StaleCache(key) from None
        else:
            new = merged_for_update(existing, want)
            new["metadata"]["resourceVersion"] = meta_of(existing).get("resourceVersion")
            await self.client.update(ENDPOINTS, new)
