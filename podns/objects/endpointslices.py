"""EndpointSlice endpoints (`discovery.k8s.io/v1`): their typed shape and how to read them.

The EndpointSlice controller writes these endpoints; the cluster DNS, the node agent's ClusterIP
proxy and `podns.lb` read them. Kubernetes leaves each condition optional and says how a reader
must default it (`discovery/v1` types.go): `ready` unset means ready, `serving` unset means "as
`ready`", `terminating` unset means not terminating. `endpoint_ready`, `endpoint_serving` and
`endpoint_terminating` are those rules, once, so every reader agrees with the others on which
endpoint takes traffic.

The TypedDicts are `total=False` as the wire is: a slice written by another controller (or by
hand, for a Service without a selector) may leave out anything but `addresses`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class EndpointConditions(TypedDict, total=False):
    """`endpoints[].conditions`; None and absent mean the same (see the readers below)."""

    ready: bool | None
    serving: bool | None
    terminating: bool | None


class EndpointTargetRef(TypedDict, total=False):
    """`endpoints[].targetRef`: the object behind the endpoint, a Pod for selector Services."""

    kind: str
    namespace: str
    name: str
    uid: str


class SliceEndpoint(TypedDict, total=False):
    """One entry of an EndpointSlice's `endpoints` (`discovery/v1 Endpoint`)."""

    addresses: list[str]
    conditions: EndpointConditions
    hostname: str
    nodeName: str
    zone: str
    targetRef: EndpointTargetRef


class EndpointPort(TypedDict, total=False):
    """One entry of an EndpointSlice's `ports`: the pod's port number under the Service port's
    name (`""` for an unnamed port)."""

    name: str
    port: int
    protocol: str
    appProtocol: str


def _condition(endpoint: Mapping[str, Any], name: str) -> bool | None:
    value = (endpoint.get("conditions") or {}).get(name)
    return None if value is None else bool(value)


def endpoint_ready(endpoint: Mapping[str, Any]) -> bool:
    """The endpoint takes new traffic: `conditions.ready`, unset counting as ready."""
    ready = _condition(endpoint, "ready")
    return True if ready is None else ready


def endpoint_serving(endpoint: Mapping[str, Any]) -> bool:
    """The endpoint can answer (terminating or not): `conditions.serving`, unset meaning as
    `endpoint_ready`."""
    serving = _condition(endpoint, "serving")
    return endpoint_ready(endpoint) if serving is None else serving


def endpoint_terminating(endpoint: Mapping[str, Any]) -> bool:
    """The endpoint's pod is being deleted: `conditions.terminating`, unset meaning not."""
    return bool(_condition(endpoint, "terminating"))


def endpoint_takes_traffic(endpoint: Mapping[str, Any]) -> bool:
    """What a ClusterIP proxy sends new connections to, as kube-proxy does: ready, serving and
    not terminating. The EndpointSlice controller already writes `ready: false` for a
    terminating pod; the other two are checked as well so that a slice written by anyone else
    (or a stale copy of one) never routes a new connection to a pod that is going away."""
    return endpoint_ready(endpoint) and endpoint_serving(endpoint) and not endpoint_terminating(endpoint)


__all__ = [
    "EndpointConditions",
    "EndpointPort",
    "EndpointTargetRef",
    "SliceEndpoint",
    "endpoint_ready",
    "endpoint_serving",
    "endpoint_takes_traffic",
    "endpoint_terminating",
]
