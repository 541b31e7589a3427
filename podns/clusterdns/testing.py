"""Builders of API objects (plain dicts, as the API serves them) for tests and benchmarks.

`service()`, `endpoint_slice()`, `pod()`, `statefulset()`, `namespace()` return the JSON shape
the Kubernetes API uses, so the record index is exercised exactly as the informers feed it.
`synthetic_zone()` yields the benchmark zone of the issue (headless services, per-pod names,
named ports) without an API server.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from podns.objects.wellknown import SERVICE_NAME_LABEL, TRIGGER_TIME_ANNOTATION

Obj = dict[str, Any]


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "None",
            cluster_ips: list[str] | None = None, ports: Sequence[tuple[str, str, int]] = (),
            external_name: str | None = None) -> Obj:
    """A Service: headless by default; `cluster_ip` an address for ClusterIP; `external_name`."""
    spec: Obj = {"ports": [{"name": n, "protocol": p, "port": port} for n, p, port in ports]}
    if external_name is not None:
        spec.update(type="ExternalName", externalName=external_name)
    else:
        spec["type"] = "ClusterIP"
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = cluster_ips or [cluster_ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint(ip: str | list[str], *, ready: bool | None = True, hostname: str | None = None,
             pod: str | None = None) -> Obj:
    ep: Obj = {"addresses": [ip] if isinstance(ip, str) else ip}
    if ready is not None:
        ep["conditions"] = {"ready": ready}
    if hostname:
        ep["hostname"] = hostname
    if pod:
        ep["targetRef"] = {"kind": "Pod", "name": pod}
    return ep


def endpoint_slice(name: str, service_name: str, ns: str = "default", *, endpoints: Sequence[Obj] = (),
                   ports: list[tuple[str, str, int]] | None = None, address_type: str = "IPv4",
                   trigger_time: str | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "labels": {SERVICE_NAME_LABEL: service_name}}
    if trigger_time:
        meta["annotations"] = {TRIGGER_TIME_ANNOTATION: trigger_time}
    obj: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": meta,
                "addressType": address_type, "endpoints": list(endpoints)}
    if ports is not None:
        obj["ports"] = [{"name": n, "protocol": p, "port": port} for n, p, port in ports]
    return obj


def pod(name: str, ns: str = "default", *, ip: str | None = None, hostname: str = "", subdomain: str = "",
        deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": ns}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: Obj = {"podIP": ip, "podIPs": [{"ip": ip}]} if ip else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"hostname": hostname, "subdomain": subdomain}, "status": status}


def statefulset(name: str, ns: str = "default", *, service_name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"serviceName": service_name, "replicas": replicas}}


def synthetic_zone(namespaces: int = 10, services: int = 1000, pods: int = 3, big_services: int = 5,
                   big_pods: int = 100) -> Iterator[tuple[str, Obj]]:
    """("service"|"slice"|"namespace", object) for the benchmark zone.

    `services` headless services spread over `namespaces` namespaces with `pods` StatefulSet-style
    endpoints each (hostname `<svc>-<i>`), plus `big_services` services of `big_pods` endpoints
    without hostnames; every service has a named port `http`/TCP 80. Pod IPs are 10.x.y.z,
    unique across the zone.
    """
    counter = 0

    def next_ip() -> str:
        nonlocal counter
        counter += 1
        return f"10.{(counter >> 16) & 255}.{(counter >> 8) & 255}.{counter & 255}"

    for n in range(namespaces):
        yield "namespace", namespace(f"ns{n}")
    for s in range(services):
        ns, name = f"ns{s % namespaces}", f"svc{s}"
        yield "service", service(name, ns, ports=[("http", "TCP", 80)])
        eps = [endpoint(next_ip(), hostname=f"{name}-{i}") for i in range(pods)]
        yield "slice", endpoint_slice(f"{name}-abcde", name, ns, endpoints=eps, ports=[("http", "TCP", 80)])
    for b in range(big_services):
        ns, name = f"ns{b % namespaces}", f"big{b}"
        yield "service", service(name, ns, ports=[("http", "TCP", 80)])
        eps = [endpoint(next_ip()) for _ in range(big_pods)]
        yield "slice", endpoint_slice(f"{name}-abcde", name, ns, endpoints=eps, ports=[("http", "TCP", 80)])


def feed(index: Any, items: Iterator[tuple[str, Obj]]) -> int:
    """Apply synthetic objects to a RecordIndex; returns how many were applied."""
    count = 0
    for kind, obj in items:
        getattr(index, f"on_{kind}_add")(obj)
        count += 1
    return count
