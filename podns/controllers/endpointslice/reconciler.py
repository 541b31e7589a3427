"""The EndpointSlice reconciler: desired endpoints of one Service -> the slice writes to make.

Pure: `reconcile(...)` takes the Service, the pods its selector matches, the nodes (for zones)
and the slices this controller already manages for the Service, and returns a `Plan` of slices
to create, update and delete. It never talks to the API; `controller.py` applies the plan. That
split is what lets the tests assert exactly which writes happen (Kubernetes `reconciler.go`
`reconcileByPortMapping` -> `finalize`).

Semantics follow Kubernetes' EndpointSlice controller:

- one endpoint per pod that has an IP of the slice's address family and is not Succeeded/Failed;
- `conditions.ready` = pod Ready and not terminating (always true with
  `publishNotReadyAddresses`), `serving` = pod Ready, `terminating` = deletionTimestamp
  (Kubernetes `podToEndpoint`);
- `hostname` when `pod.spec.hostname` is set and `pod.spec.subdomain` equals the Service's name;
- `nodeName`, `zone` (node label `topology.kubernetes.io/zone`) and `targetRef`;
- a named `targetPort` is resolved against each pod's container ports, so pods with different
  port numbers land in different slices (one "port mapping" per slice);
- at most `max_endpoints_per_slice` endpoints per slice;
- endpoints stay in the slice they are in (stable slices, fewer writes); a slice is rewritten only
  when its endpoints, ports, labels or owner changed; a Service with no endpoints keeps one empty
  placeholder slice.

Objects handed in are never mutated; every slice in the plan is a fresh dict.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podns.objects import (
    Obj,
    OwnerReference,
    is_terminating,
    join_key,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    parse_time,
    phase_of,
    pod_is_ready,
)
from podns.objects.endpointslices import EndpointPort, SliceEndpoint
from podns.objects.wellknown import (
    HEADLESS_LABEL,
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    TRIGGER_TIME_ANNOTATION,
    ZONE_LABEL,
)

#: Our value of MANAGED_BY_LABEL (Kubernetes' EndpointSlice controller's own); slices with
#: another value are left alone.
MANAGED_BY = "endpointslice-controller.k8s.io"
#: Kubernetes' default (--max-endpoints-per-slice); the API allows up to 1000.
DEFAULT_MAX_ENDPOINTS_PER_SLICE = 100


@dataclass(slots=True)
class Plan:
    """The writes that bring a Service's slices to the desired state (empty = nothing to do)."""

    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


# --- desired state -------------------------------------------------------------------------


def resolve_target_port(svc_port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The pod's port number for a Service port, or None when a named targetPort is not found
    among the pod's container ports (Kubernetes `podutil.FindPort`)."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = svc_port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and cport.get("protocol", "TCP") == protocol:
                return int(cport["containerPort"])
    return None


def address_types(service: Mapping[str, Any]) -> list[str]:
    """The slice address types of a Service: its ipFamilies, IPv4 by default."""
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    return [f for f in families if f in ("IPv4", "IPv6")] or ["IPv4"]


def pod_ip(pod: Mapping[str, Any], family: str) -> str | None:
    """The pod's address of IP `family` (`IPv4`/`IPv6`) from `status.podIPs`, None if it has none."""
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    want = 4 if family == "IPv4" else 6
    for ip in ips:
        try:
            if ipaddress.ip_address(ip).version == want:
                return str(ip)
        except ValueError:
            continue
    return None


def should_publish(pod: Mapping[str, Any]) -> bool:
    """Pods that never run again (Succeeded/Failed) are not endpoints (Kubernetes
    `ShouldPodBeInEndpoints`); terminating pods are, with `terminating: true`."""
    return phase_of(pod) not in ("Succeeded", "Failed")


def build_endpoint(
    service: Mapping[str, Any], pod: Mapping[str, Any], ip: str, nodes: Mapping[str, Obj]
) -> SliceEndpoint:
    """One endpoint for `pod` at `ip` (Kubernetes `podToEndpoint`)."""
    publish_not_ready = bool((service.get("spec") or {}).get("publishNotReadyAddresses"))
    ready = pod_is_ready(pod)
    terminating = is_terminating(pod)
    endpoint: SliceEndpoint = {
        "addresses": [ip],
        "conditions": {
            "ready": publish_not_ready or (ready and not terminating),
            "serving": ready,
            "terminating": terminating,
        },
    }
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == name_of(service):
        endpoint["hostname"] = spec["hostname"]
    node_name = spec.get("nodeName")
    if node_name:
        endpoint["nodeName"] = node_name
        zone = labels_of(nodes.get(node_name) or {}).get(ZONE_LABEL)
        if zone:
            endpoint["zone"] = zone
    endpoint["targetRef"] = {
        "kind": "Pod",
        "namespace": namespace_of(pod),
        "name": name_of(pod),
        "uid": meta_of(pod).get("uid", ""),
    }
    return endpoint


def _slice_ports(service: Mapping[str, Any], pod: Mapping[str, Any]) -> list[EndpointPort]:
    ports: list[EndpointPort] = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = resolve_target_port(sp, pod)
        if number is None:
            continue
        port: EndpointPort = {"name": sp.get("name", ""), "port": number,
                              "protocol": sp.get("protocol", "TCP")}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def _ports_key(ports: Sequence[Mapping[str, Any]]) -> tuple[Any, ...]:
    return tuple(sorted((p.get("name") or "", p.get("port"), p.get("protocol", "TCP"),
                         p.get("appProtocol") or "") for p in ports))


def _endpoint_key(endpoint: Mapping[str, Any]) -> str:
    ref = endpoint.get("targetRef") or {}
    ident = ref.get("uid") or join_key(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
    return f"{ident}|{','.join(endpoint.get('addresses') or [])}"


def desired_endpoints(
    service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], nodes: Mapping[str, Obj]
) -> dict[tuple[str, tuple[Any, ...]], tuple[list[EndpointPort], dict[str, SliceEndpoint]]]:
    """Desired endpoints grouped by (address type, port mapping) -> (ports, {key: endpoint})."""
    groups: dict[tuple[str, tuple[Any, ...]], tuple[list[EndpointPort], dict[str, SliceEndpoint]]] = {}
    for family in address_types(service):
        for pod in sorted(pods, key=name_of):
            ip = pod_ip(pod, family)
            if ip is None or not should_publish(pod):
                continue
            ports = _slice_ports(service, pod)
            group = groups.setdefault((family, _ports_key(ports)), (ports, {}))
            endpoint = build_endpoint(service, pod, ip, nodes)
            group[1][_endpoint_key(endpoint)] = endpoint
    return groups


def slice_labels(service: Mapping[str, Any]) -> dict[str, str]:
    """Labels of every managed slice: the Service's own labels plus the reserved ones."""
    labels = {k: v for k, v in labels_of(service).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    labels[SERVICE_NAME_LABEL] = name_of(service)
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    if (service.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


def trigger_time(service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> str:
    """The latest change among the Service and its pods that the write reflects (creation, Ready
    transition, deletion), as the `last-change-trigger-time` annotation value."""
    best, best_raw = -1.0, ""
    candidates = [meta_of(service).get("creationTimestamp")]
    for pod in pods:
        candidates.append(meta_of(pod).get("creationTimestamp"))
        candidates.append(meta_of(pod).get("deletionTimestamp"))
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                candidates.append(cond.get("lastTransitionTime"))
    for raw in candidates:
        t = parse_time(raw)
        if t is not None and t > best:
            best, best_raw = t, str(raw)
    return best_raw


# --- the plan ------------------------------------------------------------------------------


def _new_slice(service: Mapping[str, Any], family: str, ports: list[EndpointPort],
               endpoints: list[SliceEndpoint],
               labels: dict[str, str], trigger: str) -> Obj:
    metadata: Obj = {
        "generateName": f"{name_of(service)[:57]}-",
        "namespace": namespace_of(service),
        "labels": dict(labels),
        "ownerReferences": [owner_reference({"apiVersion": "v1", "kind": "Service", **service})],
    }
    if trigger:
        metadata["annotations"] = {TRIGGER_TIME_ANNOTATION: trigger}
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports,
    }


def _updated_slice(existing: Mapping[str, Any], ports: list[EndpointPort], endpoints: list[SliceEndpoint],
                   labels: dict[str, str], owner: OwnerReference, trigger: str) -> Obj:
    new = copy.deepcopy(dict(existing))
    new["metadata"]["labels"] = dict(labels)
    new["metadata"]["ownerReferences"] = [owner]
    if trigger:
        new["metadata"].setdefault("annotations", {})
        new["metadata"]["annotations"] = {**(new["metadata"]["annotations"] or {}),
                                          TRIGGER_TIME_ANNOTATION: trigger}
    new["endpoints"] = endpoints
    new["ports"] = ports
    return new


def _meta_current(existing: Mapping[str, Any], labels: dict[str, str], owner: OwnerReference) -> bool:
    refs = meta_of(existing).get("ownerReferences") or []
    owner_ok = len(refs) == 1 and all(refs[0].get(k) == owner[k] for k in ("kind", "name", "uid"))
    return labels_of(existing) == labels and owner_ok


def reconcile(
    service: Mapping[str, Any],
    pods: Sequence[Mapping[str, Any]],
    existing: Sequence[Mapping[str, Any]],
    *,
    nodes: Mapping[str, Obj] | None = None,
    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE,
) -> Plan:
    """The writes that make `existing` (slices managed for `service`) match `pods`.

    `pods` are the pods matching the Service's selector in its namespace (not yet filtered by
    IP or phase); `nodes` maps node names to Node objects for zones. An empty plan means the
    slices are already current: nothing is rewritten.
    """
    nodes = nodes or {}
    limit = max(1, max_endpoints_per_slice)
    labels = slice_labels(service)
    owner = owner_reference({"apiVersion": "v1", "kind": "Service", **service})
    trigger = trigger_time(service, pods)
    desired = desired_endpoints(service, pods, nodes)
    plan = Plan()

    by_group: dict[tuple[str, tuple[Any, ...]], list[Mapping[str, Any]]] = {}
    for sl in sorted(existing, key=name_of):
        key = (sl.get("addressType", "IPv4"), _ports_key(sl.get("ports") or []))
        by_group.setdefault(key, []).append(sl)

    placeholder_kept = False
    for key, slices in by_group.items():
        if key in desired:
            continue
        for sl in slices:
            empty = not (sl.get("endpoints") or []) and not (sl.get("ports") or [])
            if not desired and empty and not placeholder_kept and key[0] == address_types(service)[0]:
                placeholder_kept = True  # Kubernetes keeps one empty slice per Service
                if not _meta_current(sl, labels, owner):
                    plan.update.append(_updated_slice(sl, [], [], labels, owner, trigger))
                continue
            plan.delete.append(copy.deepcopy(dict(sl)))

    for key, (ports, wanted) in desired.items():
        _reconcile_group(service, key[0], ports, wanted, by_group.get(key, []),
                         labels=labels, owner=owner, trigger=trigger, limit=limit, plan=plan)

    _reuse_placeholder(plan, labels, owner, trigger)
    if not desired and not placeholder_kept:
        if plan.delete:  # reuse a slice we would delete instead of delete + create
            victim = plan.delete.pop(0)
            plan.update.append(_updated_slice(victim, [], [], labels, owner, trigger))
        else:
            plan.create.append(_new_slice(service, address_types(service)[0], [], [], labels, trigger))
    return plan


def _reuse_placeholder(plan: Plan, labels: dict[str, str], owner: OwnerReference, trigger: str) -> None:
    """Turn "delete the placeholder + create a slice" into one update of the placeholder (as
    Kubernetes does), when their address types match (addressType is immutable)."""
    for i, old in enumerate(plan.delete):
        if old.get("endpoints") or old.get("ports"):
            continue
        for j, new in enumerate(plan.create):
            if new["addressType"] == old.get("addressType", "IPv4"):
                plan.delete.pop(i)
                plan.create.pop(j)
                reused = _updated_slice(old, new["ports"], new["endpoints"], labels, owner, trigger)
                plan.update.append(reused)
                return


def _reconcile_group(service: Mapping[str, Any], family: str, ports: list[EndpointPort],
                     wanted: dict[str, SliceEndpoint], slices: list[Mapping[str, Any]], *,
                     labels: dict[str, str], owner: OwnerReference, trigger: str, limit: int,
                     plan: Plan) -> None:
    """Reconcile one (address type, port mapping): keep endpoints where they are, drop stale ones,
    fill free room in slices already being written, then in the fullest untouched slice, and
    only then create new slices."""
    remaining = dict(wanted)
    updating: list[tuple[Mapping[str, Any], list[SliceEndpoint]]] = []
    untouched: list[tuple[Mapping[str, Any], list[SliceEndpoint]]] = []
    for sl in slices:
        new_eps: list[SliceEndpoint] = []
        changed = not _meta_current(sl, labels, owner)
        for ep in sl.get("endpoints") or []:
            want = remaining.pop(_endpoint_key(ep), None)
            if want is None or len(new_eps) >= limit:
                if want is not None:  # over the (lowered) limit: place it elsewhere
                    remaining[_endpoint_key(ep)] = want
                changed = True
                continue
            new_eps.append(want)
            changed = changed or want != ep
        if not new_eps:
            plan.delete.append(copy.deepcopy(dict(sl)))
        elif changed:
            updating.append((sl, new_eps))
        else:
            untouched.append((sl, new_eps))

    queue = list(remaining.values())
    for _sl, eps in updating:
        while queue and len(eps) < limit:
            eps.append(queue.pop(0))
    if queue and len(queue) < limit and untouched:
        # the remainder fits in one existing slice: fill the fullest one that has room
        room = [(sl, eps) for sl, eps in untouched if len(eps) + len(queue) <= limit]
        if room:
            sl, eps = max(room, key=lambda item: len(item[1]))
            eps.extend(queue)
            queue = []
            untouched.remove((sl, eps))
            updating.append((sl, eps))
    while queue:
        chunk, queue = queue[:limit], queue[limit:]
        plan.create.append(_new_slice(service, family, ports, chunk, labels, trigger))
    for sl, eps in updating:
        plan.update.append(_updated_slice(sl, ports, eps, labels, owner, trigger))
