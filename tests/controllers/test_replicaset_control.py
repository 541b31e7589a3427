"""The ReplicaSet control as a specification: set + pods -> creations, deletions, status."""

from __future__ import annotations

from typing import Any

from podns.controllers.replicaset.control import (
    BURST_REPLICAS,
    DELETION_COST,
    REPLICA_FAILURE,
    compute_status,
    deletion_order,
    plan,
)

from ._builders import pod

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def replicaset(replicas: int = 3, *, min_ready: int = 0) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "default", "uid": "uid-rs", "generation": 2},
        "spec": {
            "replicas": replicas, "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                         "spec": {"containers": [{"name": "web", "image": "web:1"}]}},
        },
    }


def web_pod(name: str, **kw: Any) -> Obj:
    return pod(name, labels={"app": "web"}, **kw)


def test_scale_up_creates_from_template() -> None:
    """Given 1 of 3 pods, then 2 pods are created from the template with generateName
    `<rs>-`, the template's labels and annotations and a controller reference."""
    p = plan(replicaset(3), [web_pod("web-abc-1")], now=NOW)
    assert len(p.create) == 2 and not p.delete
    body = p.create[0]
    assert body["metadata"]["generateName"] == "web-abc-"
    assert body["metadata"]["labels"] == {"app": "web"} and body["metadata"]["annotations"] == {"a": "b"}
    ref = body["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
        "ReplicaSet", "web-abc", "uid-rs", True)
    assert body["spec"]["containers"][0]["image"] == "web:1"


def test_terminating_and_finished_pods_do_not_count() -> None:
    """Given 3 wanted, one pod terminating and one Failed, then 2 are created and status counts
    only the active one."""
    pods = [web_pod("a"), web_pod("b", terminating=True), web_pod("c", phase="Failed")]
    p = plan(replicaset(3), pods, now=NOW)
    assert len(p.create) == 2
    assert p.status["replicas"] == 1 and p.status["observedGeneration"] == 2


def test_scale_down_deletes_least_valuable_first() -> None:
    """Given 5 pods scaled to 1, then the unscheduled, the Pending, the not Ready, the cheaper
    (deletion cost) pods go first; the Ready, costly, scheduled one stays."""
    pods = [
        web_pod("keep", node="n1", ready_since="2026-01-01T00:00:00Z"),
        web_pod("unscheduled", node=None),
        web_pod("pending", node="n1", phase="Pending", ready=False),
        web_pod("notready", node="n1", ready=False),
        web_pod("cheap", node="n1"),
    ]
    pods[0]["metadata"]["annotations"] = {DELETION_COST: "100"}
    p = plan(replicaset(1), pods, now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["unscheduled", "pending", "notready", "cheap"]


def test_newer_ready_pods_go_before_older() -> None:
    """Given equal pods Ready since different times, then the most recently Ready goes first."""
    old = web_pod("old", node="n1", ready_since="2026-01-01T00:00:00Z")
    young = web_pod("young", node="n1", ready_since="2026-01-02T00:00:00Z")
    assert [p["metadata"]["name"] for p in deletion_order([old, young])] == ["young", "old"]


def test_burst_limit() -> None:
    """Given a scale-up beyond BURST_REPLICAS, then at most that many are created per step."""
    assert len(plan(replicaset(BURST_REPLICAS + 10), [], now=NOW).create) == BURST_REPLICAS


def test_min_ready_seconds_status_and_requeue() -> None:
    """Given minReadySeconds 10 and a pod Ready for 4 s, then it is ready but not available, and
    the set is looked at again in about 6 s."""
    since = "2027-01-15T08:00:00Z"
    from podns.objects import parse_time

    now = (parse_time(since) or 0) + 4
    p = plan(replicaset(1, min_ready=10), [web_pod("a", ready_since=since)], now=now)
    assert p.status["readyReplicas"] == 1 and p.status["availableReplicas"] == 0
    assert p.requeue_after is not None and 5.9 < p.requeue_after < 6.2


def test_not_managing_while_waiting_for_cache() -> None:
    """Given expectations not yet met (manage=False), then nothing is created, only status."""
    p = plan(replicaset(3), [], now=NOW, manage=False)
    assert not p.create and p.status["replicas"] == 0


def test_replica_failure_condition() -> None:
    """Given a failed creation, then ReplicaFailure True with the reason; a later success clears
    it."""
    rs = replicaset(2)
    st = compute_status(rs, [], NOW, ("FailedCreate", "pods is forbidden"))
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == (REPLICA_FAILURE, "True", "FailedCreate")
    rs["status"] = st
    assert "conditions" not in compute_status(rs, [], NOW)
