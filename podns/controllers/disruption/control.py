"""The disruption control: one PodDisruptionBudget, its pods and their controllers' scale ->
the budget's status (Kubernetes `pkg/controller/disruption/disruption.go`).

Pure. `compute_status(pdb, pods, expected_scale, now=...)`:

- `currentHealthy`: selected pods that are Ready, not being deleted and not recently evicted
  (`status.disruptedPods`, entries the API server adds on eviction, kept until the pod is gone
  or `DELETION_TIMEOUT` passed);
- `minAvailable: N` -> expectedPods = number of selected pods, desiredHealthy = N;
  `minAvailable: P%` -> expectedPods = the total scale of the pods' controllers, desiredHealthy =
  ceil(P% of it); `maxUnavailable: N|P%` -> expectedPods = that scale, desiredHealthy =
  expectedPods - N (P% rounded up);
- `disruptionsAllowed` = max(0, currentHealthy - desiredHealthy), with the `DisruptionAllowed`
  condition (SufficientPods / InsufficientPods); when the scale is needed but some pod has no
  controller with a scale, nothing may be disrupted (reason SyncFailed, as Kubernetes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from podns.objects import Obj, meta_of, name_of, now_rfc3339, parse_time, pod_is_ready

#: seconds an eviction's entry in disruptedPods holds a pod out of currentHealthy (Kubernetes)
DELETION_TIMEOUT = 120.0


def _scaled(value: Any, total: int) -> int:
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def compute_status(pdb: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], expected_scale: int | None,
                   *, now: float) -> Obj:
    """The budget's status; `expected_scale` is the sum of the replicas of the pods' controllers,
    None when some pod has none (only `minAvailable: N` can do without)."""
    spec = pdb.get("spec") or {}
    old = pdb.get("status") or {}
    present = {name_of(p) for p in pods}
    disrupted = {}
    for name, when in (old.get("disruptedPods") or {}).items():
        since = parse_time(when)
        if name in present and since is not None and since + DELETION_TIMEOUT > now:
            disrupted[name] = when
    healthy = sum(1 for p in pods if not meta_of(p).get("deletionTimestamp")
                  and name_of(p) not in disrupted and pod_is_ready(p))
    failed: str | None = None
    if "maxUnavailable" in spec and spec["maxUnavailable"] is not None:
        if expected_scale is None:
            failed, expected, desired = "found no controllers for a selected pod", len(pods), 0
        else:
            expected = expected_scale
            desired = max(0, expected - _scaled(spec["maxUnavailable"], expected))
    else:
        min_available = spec.get("minAvailable", 1)
        if isinstance(min_available, str):
            if expected_scale is None:
                failed, expected, desired = "found no controllers for a selected pod", len(pods), 0
            else:
                expected, desired = expected_scale, _scaled(min_available, expected_scale)
        else:
            expected, desired = len(pods), int(min_available)
    allowed = 0 if failed else max(0, healthy - desired)
    status: Obj = {
        "observedGeneration": int(meta_of(pdb).get("generation") or 0),
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
    }
    if disrupted:
        status["disruptedPods"] = disrupted
    cond: Obj
    if failed:
        cond = {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": failed}
    elif allowed > 0:
        cond = {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "message": ""}
    else:
        cond = {"type": "DisruptionAllowed", "status": "False", "reason": "InsufficientPods", "message": ""}
    cond["observedGeneration"] = status["observedGeneration"]
    previous = next((c for c in old.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    same = previous is not None and previous.get("status") == cond["status"]
    cond["lastTransitionTime"] = (previous or {}).get("lastTransitionTime") if same else now_rfc3339(now)
    status["conditions"] = [cond]
    return status
