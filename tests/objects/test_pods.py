"""Pod phase, readiness and availability as Kubernetes' podutil reads them."""

from __future__ import annotations

import pytest

from podns.objects import pods

T0 = 1_700_000_000.0


def pod(ready: str | None, since: str = "2023-11-14T22:13:20Z", phase: str | None = "Running") -> dict:
    status: dict = {"conditions": [] if ready is None else
                    [{"type": "Ready", "status": ready, "lastTransitionTime": since}]}
    if phase:
        status["phase"] = phase
    return {"status": status}


def test_phase_defaults_to_pending() -> None:
    """Given a pod without a reported phase, then its phase is Pending."""
    assert pods.phase_of({}) == "Pending" and pods.phase_of(pod("True")) == "Running"


@pytest.mark.parametrize(
    ("p", "min_ready", "now", "ready", "available"),
    [(pod("True"), 0, T0, True, True), (pod("True"), 10, T0 + 5, True, False),
     (pod("True"), 10, T0 + 10, True, True), (pod("False"), 0, T0, False, False),
     (pod(None), 0, T0, False, False), (pod("True", since="junk"), 10, T0 + 99, True, False)],
    ids=["ready", "not-yet-available", "available", "not-ready", "no-condition", "bad-time"],
)
def test_ready_and_available(p: dict, min_ready: int, now: float, ready: bool, available: bool) -> None:
    """Given a pod's Ready condition and minReadySeconds, then ready/available follow podutil."""
    assert pods.pod_is_ready(p) is ready
    assert pods.pod_is_available(p, min_ready, now) is available
