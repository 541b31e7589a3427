"""What both ClusterIP proxies serve: a Service's ports and the endpoints that take traffic.

Pure functions over API objects (a Service and its EndpointSlices), shared by the userspace
proxy (`userspace.py`, loopback mode) and the kernel NAT proxier (`nftables.py`, netns mode) so
the two can never disagree on which pod a new connection may go to.

Which endpoints: those whose conditions say ready, serving and not terminating
(`podns.objects.endpointslices.endpoint_takes_traffic`). An address that appears in several
slices of one Service (the EndpointSlice controller moving it between slices, one of them stale)
takes traffic only if *every* slice says so: a terminating mark anywhere wins, so a rollout never sends a new
connection to a pod that is going away.

Traffic policies (kube-proxy's `CategorizeEndpoints`): a Service port also carries the endpoints
of this node (`nodeName`), which `internalTrafficPolicy: Local` (ClusterIP traffic) and
`externalTrafficPolicy: Local` (NodePort traffic from outside the node) restrict it to.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podns.objects.endpointslices import endpoint_takes_traffic

Obj = dict[str, Any]

#: what the proxies forward; SCTP is not proxied (kube-proxy's nftables mode does, podns does not)
PROTOCOLS = ("TCP", "UDP")
#: `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (Kubernetes' default, 3 hours)
DEFAULT_AFFINITY_TIMEOUT = 10800


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One `clusterIP:port/protocol` of a Service and the (ip, port) endpoints behind it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP or UDP
    cluster_ip: str
    port: int
    endpoints: tuple[tuple[str, int], ...]
    #: sessionAffinity ClientIP: seconds a client sticks to its endpoint; 0 = no affinity
    affinity_timeout: int = 0
    #: type NodePort or LoadBalancer: the port every node address forwards too; 0 = none
    node_port: int = 0
    #: the endpoints (of `endpoints`) on this node (`nodeName`)
    local_endpoints: tuple[tuple[str, int], ...] = ()
    #: `internalTrafficPolicy: Local`: ClusterIP traffic goes to `local_endpoints` only (dropped
    #: when there is none)
    internal_local: bool = False
    #: `externalTrafficPolicy: Local`: NodePort traffic from outside the node goes to
    #: `local_endpoints` only, its source kept (dropped when there is none); pods and the node
    #: itself still reach every endpoint, as with kube-proxy
    external_local: bool = False

    @property
    def key(self) -> str:
        """`ns/name/tcp/80`: unique per Service port within one address family."""
        return f"{self.namespace}/{self.name}/{self.protocol.lower()}/{self.port}"


def chain_hash(text: str) -> str:
    """8 characters of base32 SHA-256 of `text`, as in kube-proxy's chain names: both kernel
    backends name a Service port's and an endpoint's chains with it."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest())[:8].decode()


def _family(ip: str) -> int | None:
    try:
        return ipaddress.ip_address(ip).version
    except ValueError:
        return None


def ready_backends(slices: Iterable[Obj], port_name: str, protocol: str,
                   family: int | None = None, node: str | None = None) -> list[tuple[str, int]]:
    """(ip, port) of the endpoints of `slices` that take traffic, for the Service port named
    `port_name` (`protocol`), sorted; only addresses of IP `family` (4 or 6) unless None, only
    endpoints whose `nodeName` is `node` unless None."""
    usable: set[tuple[str, int]] = set()
    refused: set[tuple[str, int]] = set()
    for sl in slices:
        port = next((p.get("port") for p in sl.get("ports") or []
                     if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol),
                    None)
        if port is None:
            continue
        for ep in sl.get("endpoints") or []:
            if node is not None and ep.get("nodeName") != node:
                continue
            for addr in (ep.get("addresses") or [])[:1]:  # the API: consumers use the first
                if family is not None and _family(str(addr)) != family:
                    continue
                target = (str(addr), int(port))
                (usable if endpoint_takes_traffic(ep) else refused).add(target)
    return sorted(usable - refused)


def cluster_ips(service: Obj) -> list[str]:
    """The Service's cluster IPs (`clusterIPs`, else `clusterIP`); [] when headless or none."""
    spec = service.get("spec") or {}
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    return [str(ip) for ip in ips if ip and ip != "None"]


def affinity_timeout(service: Obj) -> int:
    """Seconds of ClientIP session affinity (0 when `sessionAffinity` is not ClientIP)."""
    spec = service.get("spec") or {}
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    seconds = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds")
    return int(seconds) if isinstance(seconds, int) and seconds > 0 else DEFAULT_AFFINITY_TIMEOUT


def node_port_type(service: Obj) -> bool:
    """Whether `service`'s type has node ports (NodePort, LoadBalancer)."""
    return (service.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")


def traffic_policies(service: Obj) -> tuple[bool, bool]:
    """(internalTrafficPolicy is Local, externalTrafficPolicy is Local); the external one only
    for the types that have node ports."""
    spec = service.get("spec") or {}
    return (spec.get("internalTrafficPolicy") == "Local",
            node_port_type(service) and spec.get("externalTrafficPolicy") == "Local")


def service_ports(service: Obj, slices: Iterable[Obj], *, family: int,
                  node: str | None = None) -> list[ServicePort]:
    """Every TCP/UDP port of `service` on its cluster IP of `family`, with its endpoints (and
    its node port, for the types that have one); `local_endpoints` are those whose `nodeName` is
    `node` (None: none are)."""
    meta = service.get("metadata") or {}
    slices = list(slices)
    node_ports = node_port_type(service)
    internal_local, external_local = traffic_policies(service)
    out: list[ServicePort] = []
    for ip in cluster_ips(service):
        if _family(ip) != family:
            continue
        for p in (service.get("spec") or {}).get("ports") or []:
            proto = p.get("protocol") or "TCP"
            if proto not in PROTOCOLS or not p.get("port"):
                continue
            name = p.get("name") or ""
            out.append(ServicePort(
                namespace=str(meta.get("namespace") or "default"), name=str(meta.get("name") or ""),
                port_name=name, protocol=proto, cluster_ip=ip, port=int(p["port"]),
                endpoints=tuple(ready_backends(slices, name, proto, family)),
                affinity_timeout=affinity_timeout(service),
                node_port=int(p.get("nodePort") or 0) if node_ports else 0,
                local_endpoints=tuple(ready_backends(slices, name, proto, family, node))
                if node is not None else (),
                internal_local=internal_local, external_local=external_local))
    return out
