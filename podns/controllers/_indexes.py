"""Informer indexes shared by the Service-driven controllers (EndpointSlice, Endpoints).

Why: with thousands of pods and Services in one namespace, "every pod of the namespace, filtered
by the selector" per sync and "every Service of the namespace, matched against the pod" per pod
event are quadratic. Instead pods are indexed by each of their labels and Services by each pair
of their selector (`"ns|key=value"`): a selector's candidate pods are those under its rarest
pair, a pod's candidate Services those under any of its labels; candidates are then matched in
full. Both indexes are added once per shared informer, whichever controller comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podns.kube.informer import Informer
from podns.objects import Obj, labels_of, match_labels, namespace_of

#: pods by "ns|key=value" of each label
POD_LABELS = "ns-label"
#: Services by "ns|key=value" of each selector pair
SERVICE_SELECTOR = "ns-selector"


def _pairs(ns: str, labels: Mapping[str, str]) -> list[str]:
    return [f"{ns}|{k}={v}" for k, v in labels.items()]


def ensure(informer: Informer, name: str, fn: Any) -> None:
    """Add an index unless another controller sharing the informer already did."""
    try:
        informer.add_index(name, fn)
    except ValueError:
        pass


def index_pods(pods: Informer) -> None:
    ensure(pods, POD_LABELS, lambda p: _pairs(namespace_of(p), labels_of(p)))


def index_services(services: Informer) -> None:
    ensure(services, SERVICE_SELECTOR,
           lambda s: _pairs(namespace_of(s), (s.get("spec") or {}).get("selector") or {}))


def pods_for_selector(pods: Informer, namespace: str, selector: dict[str, str]) -> list[Obj]:
    """The cached pods of `namespace` matching a non-empty equality selector."""
    if not selector:
        return []
    keys = min((pods.index_keys(POD_LABELS, pair) for pair in _pairs(namespace, selector)), key=len)
    out = []
    for key in keys:
        pod = pods.get(key)
        if pod is not None and match_labels(selector, labels_of(pod)):
            out.append(pod)
    return out


def services_for_pod(services: Informer, pod: Obj) -> list[Obj]:
    """The cached Services (with a selector) of the pod's namespace that select it."""
    labels = labels_of(pod)
    seen: set[str] = set()
    out = []
    for pair in _pairs(namespace_of(pod), labels):
        for key in services.index_keys(SERVICE_SELECTOR, pair):
            if key in seen:
                continue
            seen.add(key)
            svc = services.get(key)
            selector = (svc or {}).get("spec", {}).get("selector") if svc else None
            if svc is not None and selector and match_labels(selector, labels):
                out.append(svc)
    return out
