"""The `kubernetes` Service in `default` and its endpoints, kept by the API servers themselves
(kube-apiserver's bootstrap controller and its lease endpoint reconciler,
`pkg/controlplane/reconcilers/lease.go`).

Every API server, every `RENEW` seconds:

1. makes sure Service `default/kubernetes` exists: ClusterIP, the first address of the service
   CIDR (what Kubernetes gives it, and what the serving certificate names), port 443 `https`
   targeting the API servers' port; labels `component: apiserver`, `provider: kubernetes`;
   annotation `podns.io/service-cidr` (`SERVICE_CIDR_ANNOTATION`): the service CIDR itself, which
   node agents read to know which addresses to NAT. An existing one is left as it is (whoever
   changed it meant to), except that the annotation is added when it lacks one;
2. renews its own Lease `kube-system/apiserver-endpoint-<address>-<port>` (label
   `apiserver.podns.io/endpoint`, `leaseDurationSeconds` `LEASE_DURATION`);
3. writes EndpointSlice `kubernetes` (label `kubernetes.io/service-name: kubernetes`, no
   managed-by label, so the EndpointSlice controller leaves it alone) and Endpoints `kubernetes`
   with the address of every API server whose Lease is live; API servers on other ports than the
   first get a slice of their own (`kubernetes-<port>`: a slice has one port list). An API server
   that stopped without saying so drops out once its Lease expires; one that stops cleanly removes
   its Lease and itself at once.

Writes go through `Rest` (validation, defaulting, cluster IP reservation) as the API server's
own, unauthenticated identity. Failures are logged and retried at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from podns.api import statuserror
from podns.api.handlers.rest import DeleteOptions, Rest, WriteOptions
from podns.api.resources.base import ResourceType
from podns.objects import now_rfc3339_micro, parse_time
from podns.objects.wellknown import SERVICE_CIDR_ANNOTATION, SERVICE_NAME_LABEL

log = logging.getLogger(__name__)
Obj = dict[str, Any]

SERVICE = "kubernetes"
LEASE_NAMESPACE = "kube-system"
LEASE_PREFIX = "apiserver-endpoint-"
LEASE_LABEL = "apiserver.podns.io/endpoint"
#: kube-apiserver's --endpoint-reconciler lease TTL (15 s) and a renewal well inside it
LEASE_DURATION = 15
RENEW = 5.0
MANAGER = "podns-apiserver"


def first_address(cidr: str) -> str:
    """The `kubernetes` Service's cluster IP: the first address of the (primary, i.e. first of a
    comma-separated dual-stack pair) service CIDR, as kube-apiserver picks it."""
    primary = cidr.split(",")[0].strip()
    return str(ipaddress.ip_network(primary, strict=False)[1])


def advertise_address(host: str) -> str:
    """The address other clients reach this API server at, for its endpoint: the listen host when
    it is an IP (wildcards -> loopback), else what the name resolves to (loopback when it does
    not): an EndpointSlice holds addresses, never names."""
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])
    except (OSError, IndexError):
        return "127.0.0.1"


def lease_name(address: str, port: int) -> str:
    return LEASE_PREFIX + address.replace(".", "-").replace(":", "-") + f"-{port}"


def desired_endpoints(live: list[tuple[str, int]]) -> tuple[dict[str, Obj], Obj]:
    """(EndpointSlices by name, Endpoints) listing `live` (address, port) pairs."""
    by_port: dict[int, list[str]] = {}
    for address, port in sorted(set(live)):
        by_port.setdefault(port, []).append(address)
    slices: dict[str, Obj] = {}
    subsets: list[Obj] = []
    for i, (port, addresses) in enumerate(sorted(by_port.items())):
        name = SERVICE if i == 0 else f"{SERVICE}-{port}"
        family = "IPv6" if ":" in addresses[0] else "IPv4"
        slices[name] = {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default", "labels": {SERVICE_NAME_LABEL: SERVICE}},
            "addressType": family,
            "endpoints": [{"addresses": [a], "conditions": {"ready": True, "serving": True,
                                                           "terminating": False}} for a in addresses],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
        subsets.append({"addresses": [{"ip": a} for a in addresses],
                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
    endpoints: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                      "metadata": {"name": SERVICE, "namespace": "default",
                                   "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                      "subsets": subsets}
    return slices, endpoints


class KubernetesService:
    """Keeps the `kubernetes` Service and its endpoints (see the module docstring)."""

    def __init__(self, rest: Rest, lookup: Callable[[str, str, str], ResourceType | None], *,
                 service_cidr: str, address: str, port: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.rest = rest
        self.address, self.port = address, port
        self.cluster_ip = first_address(service_cidr)
        self.service_cidr = service_cidr
        self.clock = clock
        types = {"services": lookup("", "v1", "services"), "endpoints": lookup("", "v1", "endpoints"),
                 "endpointslices": lookup("discovery.k8s.io", "v1", "endpointslices"),
                 "leases": lookup("coordination.k8s.io", "v1", "leases")}
        self.types = {k: v for k, v in types.items() if v is not None}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if len(self.types) == 4 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kubernetes-service")

    async def stop(self) -> None:
        """Stop renewing, and take this server out of the endpoints at once."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        with contextlib.suppress(statuserror.ApiError):
            await self.rest.delete(self.types["leases"], LEASE_NAMESPACE,
                                   lease_name(self.address, self.port), DeleteOptions())
        with contextlib.suppress(statuserror.ApiError):
            await self.reconcile_endpoints()

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except statuserror.ApiError as exc:
                log.warning("keeping the kubernetes Service: %s", exc)
            except Exception:  # a store error must not end the loop: the next round retries
                log.exception("keeping the kubernetes Service")
            await asyncio.sleep(RENEW)

    async def sync(self) -> None:
        """One round: the Service, this server's Lease, the endpoints."""
        await self.ensure_service()
        await self.renew_lease()
        await self.reconcile_endpoints()

    async def ensure_service(self) -> None:
        rt = self.types["services"]
        try:
            found = await self.rest.get(rt, "default", SERVICE)
        except statuserror.ApiError:
            found = None
        if found is not None:
            if SERVICE_CIDR_ANNOTATION not in ((found.get("metadata") or {}).get("annotations") or {}):
                await self._annotate(rt)
            return
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {
            "name": SERVICE, "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"},
            "annotations": {SERVICE_CIDR_ANNOTATION: self.service_cidr}},
            "spec": {"type": "ClusterIP", "clusterIP": self.cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}]}}
        await self._create(rt, "default", body)

    async def _annotate(self, rt: ResourceType) -> None:
        """Add the service CIDR annotation to a `kubernetes` Service made without it (by an
        older podns, or by hand)."""
        def annotate(cur: Obj) -> Obj:
            annotations = cur["metadata"].setdefault("annotations", {})
            annotations.setdefault(SERVICE_CIDR_ANNOTATION, self.service_cidr)
            cur["metadata"].pop("resourceVersion", None)
            return cur

        await self.rest.update(rt, "default", SERVICE, annotate, WriteOptions(field_manager=MANAGER))

    async def renew_lease(self) -> None:
        rt = self.types["leases"]
        name = lease_name(self.address, self.port)
        spec = {"holderIdentity": f"{self.address}:{self.port}", "leaseDurationSeconds": LEASE_DURATION,
                "renewTime": now_rfc3339_micro(self.clock())}

        def renew(cur: Obj) -> Obj:
            cur.setdefault("spec", {}).update(spec)
            cur["metadata"].pop("resourceVersion", None)
            return cur

        try:
            await self.rest.update(rt, LEASE_NAMESPACE, name, renew, WriteOptions(field_manager=MANAGER))
        except statuserror.ApiError as exc:
            if exc.code != 404:
                raise
            await self._create(rt, LEASE_NAMESPACE, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE, "labels": {LEASE_LABEL: "true"}},
                "spec": spec})

    async def live(self) -> list[tuple[str, int]]:
        """(address, port) of every API server whose Lease has not expired."""
        listing = await self.rest.list(self.types["leases"], LEASE_NAMESPACE)
        now = self.clock()
        out = []
        for lease in listing.get("items") or []:
            if ((lease.get("metadata") or {}).get("labels") or {}).get(LEASE_LABEL) != "true":
                continue
            spec = lease.get("spec") or {}
            renewed = parse_time(spec.get("renewTime"))
            if renewed is None or renewed + float(spec.get("leaseDurationSeconds") or 0) < now:
                continue
            address, _, port = str(spec.get("holderIdentity") or "").rpartition(":")
            if address and port.isdigit():
                out.append((address, int(port)))
        return out

    async def reconcile_endpoints(self) -> None:
        slices, endpoints = desired_endpoints(await self.live())
        rt = self.types["endpointslices"]
        listing = await self.rest.list(rt, "default")
        current = {o["metadata"]["name"]: o for o in listing.get("items") or []
                   if ((o.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) == SERVICE}
        for name, want in slices.items():
            await self._put(rt, "default", name, want, current.get(name),
                            ("addressType", "endpoints", "ports"))
        for name in set(current) - set(slices):
            with contextlib.suppress(statuserror.ApiError):
                await self.rest.delete(rt, "default", name, DeleteOptions())
        ep_rt = self.types["endpoints"]
        try:
            ep: Obj | None = await self.rest.get(ep_rt, "default", SERVICE)
        except statuserror.ApiError as exc:
            if exc.code != 404:
                raise
            ep = None
        await self._put(ep_rt, "default", SERVICE, endpoints, ep, ("subsets",))

    async def _put(self, rt: ResourceType, ns: str, name: str, want: Obj, cur: Obj | None,
                   fields: tuple[str, ...]) -> None:
        if cur is None:
            await self._create(rt, ns, want)
            return
        if all(cur.get(f) == want.get(f) for f in fields):
            return

        def replace(obj: Obj) -> Obj:
            for f in fields:
                obj[f] = want[f]
            obj["metadata"].pop("resourceVersion", None)
            return obj

        await self.rest.update(rt, ns, name, replace, WriteOptions(field_manager=MANAGER))

    async def _create(self, rt: ResourceType, ns: str, body: Obj) -> None:
        try:
            await self.rest.create(rt, ns, body, WriteOptions(field_manager=MANAGER))
        except statuserror.ApiError as exc:
            if exc.code != 409:  # another API server made it first
                raise
