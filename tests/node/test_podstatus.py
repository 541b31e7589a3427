"""Pod phase and conditions as the kubelet computes them (pure, table-driven)."""

from __future__ import annotations

import pytest

from podns.node.podstatus import ContainerRecord, conditions, pod_phase, pod_status

RUN = {"running": {"startedAt": "t"}}
WAIT = {"waiting": {"reason": "ContainerCreating"}}


def term(code: int) -> dict:
    return {"terminated": {"exitCode": code}}


def rec(state: dict, last: dict | None = None, ready: bool = False, name: str = "c") -> ContainerRecord:
    return ContainerRecord(name=name, state=state, last_state=last or {}, ready=ready)


@pytest.mark.parametrize(
    ("policy", "init", "main", "phase"),
    [
        ("Always", [], [rec(WAIT)], "Pending"),
        ("Always", [rec(RUN, name="i")], [rec(WAIT)], "Pending"),
        ("Always", [rec(term(0), name="i")], [rec(RUN)], "Running"),
        ("Always", [], [rec(RUN), rec(WAIT, name="d")], "Pending"),
        ("Always", [], [rec(term(0))], "Running"),
        ("Always", [], [rec({"waiting": {"reason": "CrashLoopBackOff"}}, last=term(1))], "Running"),
        ("Never", [], [rec(term(0)), rec(term(0), name="d")], "Succeeded"),
        ("Never", [], [rec(term(0)), rec(term(2), name="d")], "Failed"),
        ("OnFailure", [], [rec(term(0))], "Succeeded"),
        ("OnFailure", [], [rec(term(1))], "Running"),
        ("Never", [], [rec(RUN), rec(term(1), name="d")], "Running"),
    ],
    ids=["waiting", "init-running", "init-done", "one-waiting", "always-exited", "crashloop",
         "never-all-ok", "never-one-failed", "onfailure-ok", "onfailure-failed-restarting",
         "one-still-running"],
)
def test_phase(policy: str, init: list, main: list, phase: str) -> None:
    assert pod_phase(policy, init, main) == phase


def test_conditions_and_transition_times_kept() -> None:
    """given unchanged readiness, lastTransitionTime stays; the unready containers are named."""
    main = [rec(RUN, ready=True, name="a"), rec(RUN, ready=False, name="b")]
    old = [{"type": "Ready", "status": "False", "lastTransitionTime": "2020-01-01T00:00:00Z"}]
    conds = {c["type"]: c for c in conditions("Running", [], main, old)}
    assert [c for c in conds] == ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert conds["Ready"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert conds["Ready"]["message"] == "containers with unready status: [b]"
    assert conds["Initialized"]["status"] == "True" and conds["PodScheduled"]["status"] == "True"
    main[1].ready = True
    conds = {c["type"]: c for c in conditions("Running", [], main, old)}
    assert conds["Ready"]["status"] == "True"
    assert conds["Ready"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_pod_status_shape() -> None:
    pod = {"spec": {"restartPolicy": "Always"}, "status": {}}
    st = pod_status(pod, [rec(term(0), name="i")], [rec(RUN, ready=True)], pod_ips=["127.1.0.5"],
                    host_ip="127.0.0.1", start_time="t0")
    assert st["phase"] == "Running" and st["podIP"] == "127.1.0.5" and st["podIPs"] == [{"ip": "127.1.0.5"}]
    assert st["hostIP"] == "127.0.0.1" and st["startTime"] == "t0"
    assert st["initContainerStatuses"][0]["state"] == term(0)
    cs = st["containerStatuses"][0]
    assert set(cs) >= {"name", "state", "lastState", "ready", "restartCount", "started", "image"}
