"""Pod readiness as Kubernetes' `podutil` reads it: phase, Ready, available.

Pure reads of a Pod's status, shared by the controllers (EndpointSlice, Endpoints, StatefulSet)
and anything else that must agree with them on when a pod counts as ready. Computing a pod's
status from its containers is the node agent's (`podns.node.podstatus`), not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podns.objects.meta import get_condition
from podns.objects.times import parse_time


def phase_of(pod: Mapping[str, Any]) -> str:
    """`status.phase`, `Pending` until the node agent has reported one."""
    return str((pod.get("status") or {}).get("phase") or "Pending")


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """The pod's `Ready` condition is True (Kubernetes `podutil.IsPodReady`)."""
    cond = get_condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def ready_since(pod: Mapping[str, Any]) -> float | None:
    """When (seconds since the epoch) the pod's Ready condition last changed, if it has one
    with a valid time."""
    return parse_time((get_condition(pod, "Ready") or {}).get("lastTransitionTime"))


def pod_is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` at `now` (seconds since the epoch; Kubernetes
    `podutil.IsPodAvailable`)."""
    if not pod_is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since is not None and since + min_ready_seconds <= now
