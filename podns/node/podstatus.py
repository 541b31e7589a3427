"""Pod status as the kubelet reports it: phase, conditions and container statuses.

Pure functions over `ContainerRecord`s (what the agent knows about each container), so the rules
are testable without processes: `pod_phase` follows the kubelet's `getPhase`, `conditions` builds
PodScheduled / Initialized / ContainersReady / Ready with the kubelet's reasons and messages, and
keeps a condition's `lastTransitionTime` while its status does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from podns.objects.meta import Condition
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]


@dataclass(slots=True)
class ContainerRecord:
    """The agent's view of one container: its current and last state, as API fragments."""

    name: str
    image: str = ""
    state: Obj = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: Obj = field(default_factory=dict)
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    container_id: str = ""
    image_id: str = ""  # from the runtime (podman: the image's digest); "" for the process runtime

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> Obj | None:
        return self.state.get("terminated")

    def to_status(self) -> Obj:
        out: Obj = {
            "name": self.name,
            "image": self.image,
            "imageID": self.image_id,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out


def pod_phase(restart_policy: str, init: list[ContainerRecord], main: list[ContainerRecord],
              *, init_failed: bool = False) -> str:
    """The kubelet's `getPhase`: Pending until initialised and every container has run once;
    then Running, or Succeeded/Failed once every container has stopped for good."""
    if init_failed:
        return "Failed"
    for rec in init:
        term = rec.terminated
        if term is None or term.get("exitCode") != 0:
            return "Pending"
    running = waiting = stopped = succeeded = 0
    for rec in main:
        if rec.running:
            running += 1
        elif rec.terminated is not None:
            stopped += 1
            if rec.terminated.get("exitCode") == 0:
                succeeded += 1
        elif rec.last_state.get("terminated") is not None:
            stopped += 1  # waiting to restart
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(ctype: str, ok: bool, old: dict[str, Condition], reason: str = "",
               message: str = "") -> Condition:
    status = "True" if ok else "False"
    prev = old.get(ctype)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == status else None
    cond: Condition = {"type": ctype, "status": status, "lastProbeTime": None,
                 "lastTransitionTime": since or now_rfc3339()}
    if not ok and reason:
        cond["reason"] = reason
        cond["message"] = message
    return cond


def conditions(phase: str, init: list[ContainerRecord], main: list[ContainerRecord],
               old_conditions: list[Condition] | None = None) -> list[Condition]:
    """Initialized, Ready, ContainersReady, PodScheduled (the kubelet's order and wording)."""
    old = {c.get("type", ""): c for c in old_conditions or []}
    pending_init = [r.name for r in init if (r.terminated or {}).get("exitCode") != 0]
    unready = [r.name for r in main if not r.ready]
    completed = phase == "Succeeded"
    init_ok = not pending_init or completed
    ready_reason = "PodCompleted" if completed else "ContainersNotReady"
    ready_msg = "" if completed else f"containers with unready status: [{' '.join(unready)}]"
    init_reason = "ContainersNotInitialized"
    init_msg = f"containers with incomplete status: [{' '.join(pending_init)}]"
    ready = not unready and not completed and init_ok
    return [
        _condition("Initialized", init_ok, old, init_reason, init_msg),
        _condition("Ready", ready, old, ready_reason, ready_msg),
        _condition("ContainersReady", ready, old, ready_reason, ready_msg),
        _condition("PodScheduled", True, old),
    ]


def pod_status(
    pod: Obj,
    init: list[ContainerRecord],
    main: list[ContainerRecord],
    *,
    pod_ips: list[str],
    host_ip: str,
    start_time: str,
    init_failed: bool = False,
    reason: str = "",
    message: str = "",
) -> Obj:
    """The full `status` the agent writes for `pod`; `pod_ips` primary first (dual-stack: two)."""
    spec = pod.get("spec", {})
    phase = pod_phase(spec.get("restartPolicy", "Always"), init, main, init_failed=init_failed)
    old = (pod.get("status") or {}).get("conditions") or []
    status: Obj = {
        "phase": phase,
        "conditions": conditions(phase, init, main, old),
        # None (not "") so that a JSON merge patch removes a field the pod no longer has
        "hostIP": host_ip or None,
        "hostIPs": [{"ip": host_ip}] if host_ip else None,
        "podIP": pod_ips[0] if pod_ips else None,
        "podIPs": [{"ip": ip} for ip in pod_ips] or None,
        "startTime": start_time,
        "qosClass": "BestEffort",
        "containerStatuses": [r.to_status() for r in main],
    }
    if init:
        status["initContainerStatuses"] = [r.to_status() for r in init]
    status["reason"] = reason or None
    status["message"] = message or None
    return status
