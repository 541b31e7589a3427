"""Small builders for raw Kubernetes objects used by the controller tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def service(
    name: str = "db",
    *,
    ns: str = "default",
    selector: dict[str, str] | None = None,
    ports: list[Obj] | None = None,
    headless: bool = True,
    publish_not_ready: bool = False,
    labels: dict[str, str] | None = None,
) -> Obj:
    spec: Obj = {
        "selector": {"app": name} if selector is None else selector,
        "ports": [{"name": "tcp", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
        if ports is None
        else ports,
    }
    if headless:
        spec["clusterIP"] = "None"
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-svc-{name}",
            "labels": labels or {},
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    }


def pod(
    name: str,
    *,
    ns: str = "default",
    labels: dict[str, str] | None = None,
    ip: str | None = "10.0.0.1",
    ready: bool = True,
    phase: str = "Running",
    node: str | None = None,
    hostname: str | None = None,
    subdomain: str | None = None,
    terminating: bool = False,
    container_ports: list[Obj] | None = None,
    ready_since: str = "2026-01-01T00:00:01Z",
) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x", "ports": container_ports or []}]}
    if node:
        spec["nodeName"] = node
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status: Obj = {
        "phase": phase,
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since}
        ],
    }
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    meta: Obj = {
        "name": name,
        "namespace": ns,
        "uid": f"uid-{name}",
        "labels": labels or {"app": "db"},
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-01-01T00:00:05Z"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def node(name: str, *, zone: str | None = None, ready: bool = True) -> Obj:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "uid": f"uid-{name}"},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
