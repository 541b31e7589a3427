"""The legacy Endpoints reconciler: one Service and its pods -> the desired `Endpoints` object.

Pure, like the EndpointSlice reconciler. Kubernetes' endpoints controller semantics:

- addresses of Ready pods (or all, with `publishNotReadyAddresses`) under `addresses`, the others
  under `notReadyAddresses`; terminating pods are left out unless `publishNotReadyAddresses`;
- one subset per distinct port mapping (named targetPorts resolve per pod), subsets and
  addresses sorted so equal inputs give equal objects;
- the same name, namespace and labels as the Service (plus the headless label).

`needs_write` compares only what the controller owns, so an unchanged object is never rewritten.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from podns.controllers.endpointslice.reconciler import (
    address_types,
    pod_ip,
    resolve_target_port,
    should_publish,
    trigger_time,
)
from podns.objects import (
    Obj,
    is_terminating,
    labels_of,
    meta_of,
    name_of,
    namespace_of,
    pod_is_ready,
)
from podns.objects.wellknown import HEADLESS_LABEL, OVER_CAPACITY_ANNOTATION, TRIGGER_TIME_ANNOTATION

#: Kubernetes truncates Endpoints at 1000 addresses and says so with OVER_CAPACITY_ANNOTATION.
MAX_ADDRESSES = 1000


def desired(service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> Obj:
    """The Endpoints object for `service` given the pods its selector matches."""
    spec = service.get("spec") or {}
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    subsets: dict[tuple[Any, ...], Obj] = {}
    count = 0
    family = address_types(service)[0]  # Kubernetes: the Service's primary family (ipFamilies[0])
    for pod in sorted(pods, key=name_of):
        ip = pod_ip(pod, family)
        if not ip or not should_publish(pod) or (is_terminating(pod) and not publish_not_ready):
            continue
        address: Obj = {"ip": ip}
        pspec = pod.get("spec") or {}
        if pspec.get("hostname") and pspec.get("subdomain") == name_of(service):
            address["hostname"] = pspec["hostname"]
        if pspec.get("nodeName"):
            address["nodeName"] = pspec["nodeName"]
        address["targetRef"] = {"kind": "Pod", "namespace": namespace_of(pod), "name": name_of(pod),
                                "uid": meta_of(pod).get("uid", "")}
        ports: list[Obj] = []
        for sp in spec.get("ports") or []:
            number = resolve_target_port(sp, pod)
            if number is None:
                continue
            port: Obj = {"name": sp.get("name", ""), "port": number, "protocol": sp.get("protocol", "TCP")}
            if not port["name"]:
                del port["name"]
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            ports.append(port)
        if spec.get("ports") and not ports:
            continue  # no port of the Service exists on this pod
        if count >= MAX_ADDRESSES:
            continue
        count += 1
        key = tuple(sorted((p.get("name", ""), p["port"], p["protocol"]) for p in ports))
        subset = subsets.setdefault(key, {"ports": sorted(ports, key=lambda p: (p.get("name", ""),
                                                                             p["port"]))})
        field_name = "addresses" if publish_not_ready or pod_is_ready(pod) else "notReadyAddresses"
        subset.setdefault(field_name, []).append(address)
    for subset in subsets.values():
        for field_name in ("addresses", "notReadyAddresses"):
            if field_name in subset:
                subset[field_name].sort(key=lambda a: a["ip"])
        if not subset["ports"]:
            del subset["ports"]
    labels = dict(labels_of(service))
    labels.pop(HEADLESS_LABEL, None)
    if spec.get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    annotations: dict[str, str] = {}
    trigger = trigger_time(service, pods)
    if trigger:
        annotations[TRIGGER_TIME_ANNOTATION] = trigger
    if count >= MAX_ADDRESSES and len(pods) > MAX_ADDRESSES:
        annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name_of(service), "namespace": namespace_of(service),
                     "labels": labels, "annotations": annotations},
        "subsets": [subsets[k] for k in sorted(subsets)],
    }


def needs_write(existing: Mapping[str, Any] | None, want: Mapping[str, Any]) -> bool:
    """Whether `existing` differs from `want` in subsets, labels or truncation (the trigger-time
    annotation alone never causes a write)."""
    if existing is None:
        return True
    if (existing.get("subsets") or []) != want["subsets"]:
        return True
    if labels_of(existing) != want["metadata"]["labels"]:
        return True
    old_trunc = (meta_of(existing).get("annotations") or {}).get(OVER_CAPACITY_ANNOTATION)
    return bool(old_trunc != want["metadata"]["annotations"].get(OVER_CAPACITY_ANNOTATION))


def merged_for_update(existing: Mapping[str, Any], want: Mapping[str, Any]) -> Obj:
    """`existing` (copied) carrying `want`'s subsets, labels and our annotations."""
    new = copy.deepcopy(dict(existing))
    new["subsets"] = copy.deepcopy(want["subsets"])
    new["metadata"]["labels"] = dict(want["metadata"]["labels"])
    annotations = dict(new["metadata"].get("annotations") or {})
    annotations.pop(OVER_CAPACITY_ANNOTATION, None)
    annotations.update(want["metadata"]["annotations"])
    new["metadata"]["annotations"] = annotations
    return new
