"""Endpoints pushed from the Kubernetes API: a watch on the service's EndpointSlices.

Changes arrive within milliseconds of the EndpointSlice controller writing them, without
polling and without DNS TTLs in the way. Works against podns or any Kubernetes cluster (it
only lists and watches `discovery.k8s.io/v1` EndpointSlices labelled
`kubernetes.io/service-name=<service>`). Terminating and not-ready endpoints are reported with
their conditions, so the balancer can drain them instead of cutting them off.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from podns.kube import errors as kube_errors
from podns.kube import resources
from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.lb.endpoint import Endpoint
from podns.lb.errors import ResolutionError
from podns.lb.sources.base import Target, Update
from podns.objects.endpointslices import (
    EndpointPort,
    SliceEndpoint,
    endpoint_ready,
    endpoint_serving,
    endpoint_terminating,
)
from podns.objects.wellknown import SERVICE_NAME_LABEL


def endpoints_from_slices(slices: list[dict[str, Any]], port: int | str | None) -> list[Endpoint]:
    """The endpoints of a service's slices for one port (by name or number; None = the
    slices' only port). Endpoints seen in several slices are reported once."""
    out: dict[str, Endpoint] = {}
    for sl in slices:
        ports: list[EndpointPort] = sl.get("ports") or []
        number = _select_port(ports, port)
        if number is None:
            continue
        endpoints: list[SliceEndpoint] = sl.get("endpoints") or []
        for ep in endpoints:
            for addr in ep.get("addresses") or []:
                e = Endpoint(
                    address=addr,
                    port=number,
                    hostname=ep.get("hostname"),
                    ready=endpoint_ready(ep),
                    serving=endpoint_serving(ep),
                    terminating=endpoint_terminating(ep),
                    node_name=ep.get("nodeName"),
                    zone=ep.get("zone"),
                )
                out[e.key] = e
    return sorted(out.values(), key=lambda e: (e.hostname or "", e.key))


def _select_port(ports: list[EndpointPort], port: int | str | None) -> int | None:
    if port is None:
        return int(ports[0].get("port") or 0) if len(ports) == 1 else (0 if not ports else None)
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        want = int(port)
        for p in ports:
            if p.get("port") == want:
                return want
        # Slices list target ports; a number the user gave is trusted when there is one port.
        return want if len(ports) <= 1 else None
    for p in ports:
        if p.get("name") == port:
            return int(p.get("port") or 0)
    return None


class Watch:
    """A watch source. Give a kubeconfig path (None: in a pod, its ServiceAccount, as client-go's
    in-cluster configuration; elsewhere $KUBECONFIG or ~/.kube/config) or a ready
    `podns.kube.client.Client` (then the caller owns and closes it).

    Needs get/list/watch on EndpointSlices in the service's namespace; reading the Service (to
    tell "not found" from "no endpoints") is optional: a 403 there is ignored."""

    def __init__(
        self, kubeconfig: str | None = None, *, client: Client | None = None, sync_timeout: float = 10.0
    ) -> None:
        self._kubeconfig = kubeconfig
        self._client = client
        self._own_client = client is None
        self.sync_timeout = sync_timeout
        self._informer: Informer | None = None
        self._task: asyncio.Task[Any] | None = None

    async def start(self, target: Target, update: Update) -> None:
        if self._client is None:
            self._client = Client.from_kubeconfig(self._kubeconfig)
        svc, ns = target.service, target.service_namespace
        missing_reason = f"service {ns}/{svc} has no endpoints"
        try:
            await self._client.get(resources.SERVICES, svc, ns)
        except kube_errors.NotFound:
            missing_reason = f"service {ns}/{svc} not found"
        except kube_errors.Forbidden:
            pass  # an account allowed to read only EndpointSlices (the usual Role for this)
        except kube_errors.KubeError as exc:
            raise ResolutionError(f"reading service {ns}/{svc}: {exc}") from exc

        informer = Informer(
            self._client, resources.ENDPOINTSLICES, ns, label_selector=f"{SERVICE_NAME_LABEL}={svc}"
        )
        self._informer = informer

        def changed(*_: Any) -> None:
            eps = endpoints_from_slices(informer.list(), target.port)
            update(eps, None if eps else missing_reason)

        informer.add_handler(on_add=changed, on_update=changed, on_delete=changed)
        self._task = informer.start()
        try:
            await informer.wait_synced(timeout=self.sync_timeout)
        except (TimeoutError, kube_errors.KubeError) as exc:
            await self.close()
            raise ResolutionError(f"watching EndpointSlices of {ns}/{svc}: {exc}") from exc
        changed()

    async def refresh(self) -> None:
        # A watch is already current; nothing to re-resolve.
        return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._own_client and self._client is not None:
            await self._client.close()
            self._client = None
