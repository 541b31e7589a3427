"""Trimmed Kubernetes objects: only the fields cluster DNS serves.

The informers hand us full API objects (plain dicts as the API serves them); we convert
each one immediately into a small frozen dataclass and keep only that (CoreDNS
`object/service.go`: "cache only what you serve"). Conversion never raises on odd input:
a malformed field is ignored, so one bad object cannot stop the DNS server.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from typing import Any

from podns.objects.endpointslices import endpoint_ready
from podns.objects.times import parse_time
from podns.objects.wellknown import SERVICE_NAME_LABEL, TRIGGER_TIME_ANNOTATION

CLUSTER_IP, HEADLESS, EXTERNAL_NAME = "ClusterIP", "Headless", "ExternalName"


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class Service:
    namespace: str
    name: str
    kind: str  # CLUSTER_IP, HEADLESS or EXTERNAL_NAME
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    ready: bool
    hostname: str


@dataclass(frozen=True, slots=True)
class Slice:
    namespace: str
    name: str
    service: str
    endpoints: tuple[Endpoint, ...]
    ports: tuple[Port, ...]
    #: Unix time from the last-change-trigger-time annotation, None when absent
    trigger_time: float | None


@dataclass(frozen=True, slots=True)
class Pod:
    namespace: str
    name: str
    ips: tuple[str, ...]
    hostname: str
    subdomain: str
    deleting: bool


@dataclass(frozen=True, slots=True)
class StatefulSet:
    namespace: str
    name: str
    service_name: str
    replicas: int


#: one shared copy of each port list (a few distinct ones serve thousands of Services)
_PORTS: dict[tuple[Port, ...], tuple[Port, ...]] = {}


def _meta(obj: dict[str, Any]) -> tuple[str, str]:
    """(namespace, name); the namespace interned: a few hundred strings shared by every object
    (a copy per object parsed from JSON was ~1 MB per 20k objects)."""
    meta = obj.get("metadata") or {}
    return sys.intern(str(meta.get("namespace") or "default")), str(meta.get("name") or "")


def _ip(value: Any) -> str | None:
    """The canonical text of an IP address, None if `value` is not one (inet_pton: C speed)."""
    text = str(value)
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        return None


def _ports(items: Any) -> tuple[Port, ...]:
    out = []
    for p in items or ():
        if not isinstance(p, dict):
            continue
        port = p.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            continue
        out.append(Port(str(p.get("name") or ""), str(p.get("protocol") or "TCP"), port))
    ports = tuple(out)
    if len(_PORTS) > 10000:  # unbounded variety (hostile input): stop sharing, never grow
        return _PORTS.get(ports, ports)
    return _PORTS.setdefault(ports, ports)


def trim_service(obj: dict[str, Any]) -> Service:
    """The DNS view of a Service (clusterIP "None" = headless; clusterIPs preferred)."""
    ns, name = _meta(obj)
    spec = obj.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return Service(ns, name, EXTERNAL_NAME, (), str(spec.get("externalName") or "").rstrip("."), ())
    ips_raw = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    if spec.get("clusterIP") == "None" or (ips_raw and ips_raw[0] == "None"):
        return Service(ns, name, HEADLESS, (), "", _ports(spec.get("ports")))
    ips = tuple(ip for ip in (_ip(v) for v in ips_raw) if ip)
    return Service(ns, name, CLUSTER_IP, ips, "", _ports(spec.get("ports")))


def trim_slice(obj: dict[str, Any]) -> Slice:
    """The DNS view of an EndpointSlice; `conditions.ready` unset counts as ready."""
    ns, name = _meta(obj)
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    endpoints = []
    for ep in obj.get("endpoints") or ():
        if not isinstance(ep, dict):
            continue
        addrs = tuple(a for a in (_ip(v) for v in ep.get("addresses") or ()) if a)
        if not addrs:
            continue
        endpoints.append(Endpoint(addrs, endpoint_ready(ep), str(ep.get("hostname") or "")))
    return Slice(ns, name, str(labels.get(SERVICE_NAME_LABEL) or ""), tuple(endpoints),
                 _ports(obj.get("ports")), parse_time(annotations.get(TRIGGER_TIME_ANNOTATION)))


def trim_pod(obj: dict[str, Any]) -> Pod:
    """The DNS view of a Pod: its IPs, hostname/subdomain, and whether it is terminating."""
    ns, name = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if isinstance(p, dict)]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return Pod(ns, name, tuple(ip for ip in (_ip(v) for v in ips) if ip), str(spec.get("hostname") or ""),
               str(spec.get("subdomain") or ""), bool((obj.get("metadata") or {}).get("deletionTimestamp")))


def trim_statefulset(obj: dict[str, Any]) -> StatefulSet:
    ns, name = _meta(obj)
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas", 1)
    return StatefulSet(ns, name, str(spec.get("serviceName") or ""),
                       replicas if isinstance(replicas, int) and replicas >= 0 else 0)


def trim_namespace(obj: dict[str, Any]) -> str:
    return _meta(obj)[1]


def endpoint_hostname(ep: Endpoint, address: str) -> str:
    """CoreDNS's name for an endpoint address: its hostname, else the dashed IP.

    IPv6 keeps the textual form with `:` -> `-`, and a trailing `-` gets a `0` appended.
    """
    if ep.hostname:
        return ep.hostname
    if ":" in address:
        dashed = address.replace(":", "-")
        return dashed + "0" if dashed.endswith("-") else dashed
    return address.replace(".", "-")
