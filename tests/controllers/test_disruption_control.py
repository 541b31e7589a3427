"""The disruption control as a specification: budget + pods + controllers' scale -> status."""

from __future__ import annotations

from typing import Any

from podns.controllers.disruption.control import compute_status
from podns.objects import now_rfc3339

from ._builders import pod

NOW = 1_800_000_000.0


def budget(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": {}}


def pods(ready: int, unready: int = 0) -> list[dict[str, Any]]:
    return ([pod(f"r{i}", labels={"app": "web"}) for i in range(ready)]
            + [pod(f"u{i}", labels={"app": "web"}, ready=False) for i in range(unready)])


def test_min_available_count() -> None:
    """Given minAvailable 2 and 3 Ready pods of 4, then 1 disruption is allowed (SufficientPods);
    with 2 Ready none (InsufficientPods)."""
    st = compute_status(budget(minAvailable=2), pods(3, 1), None, now=NOW)
    counts = (st["currentHealthy"], st["desiredHealthy"], st["expectedPods"], st["disruptionsAllowed"])
    assert counts == (3, 2, 4, 1)
    assert st["conditions"][0]["reason"] == "SufficientPods"
    st = compute_status(budget(minAvailable=2), pods(2), None, now=NOW)
    assert st["disruptionsAllowed"] == 0 and st["conditions"][0]["reason"] == "InsufficientPods"


def test_percent_and_max_unavailable_use_controller_scale() -> None:
    """Given 50% minAvailable over a scale of 5, desiredHealthy is 3 (rounded up); maxUnavailable
    25% of 4 leaves 3 needed; without a controller scale nothing may be disrupted."""
    assert compute_status(budget(minAvailable="50%"), pods(5), 5, now=NOW)["desiredHealthy"] == 3
    st = compute_status(budget(maxUnavailable="25%"), pods(4), 4, now=NOW)
    assert (st["desiredHealthy"], st["disruptionsAllowed"]) == (3, 1)
    st = compute_status(budget(maxUnavailable=1), pods(4), None, now=NOW)
    assert st["disruptionsAllowed"] == 0 and st["conditions"][0]["reason"] == "SyncFailed"


def test_disrupted_pods_do_not_count_until_they_expire() -> None:
    """Given a pod the API server just evicted (in disruptedPods), then it is not healthy; an entry
    older than two minutes, or for a pod that is gone, is dropped."""
    b = budget(minAvailable=1)
    b["status"] = {"disruptedPods": {"r0": now_rfc3339(NOW - 10), "gone": now_rfc3339(NOW - 10)}}
    st = compute_status(b, pods(2), None, now=NOW)
    assert st["currentHealthy"] == 1 and st["disruptedPods"] == {"r0": now_rfc3339(NOW - 10)}
    st = compute_status(b, pods(2), None, now=NOW + 200)
    assert st["currentHealthy"] == 2 and "disruptedPods" not in st
