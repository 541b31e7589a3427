"""The Job control as a specification: Job + pods -> creations, deletions, conditions."""

from __future__ import annotations

from typing import Any

from podns.controllers.job.control import (
    BACKOFF_BASE,
    COMPLETE,
    FAILED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    SUSPENDED,
    plan,
)
from podns.objects import now_rfc3339

from ._builders import pod

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def job(*, completions: int | None = 1, parallelism: int = 1, backoff: int = 6,
        deadline: int | None = None, ttl: int | None = None, restart: str = "Never") -> Obj:
    spec: Obj = {
        "parallelism": parallelism, "backoffLimit": backoff,
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "uid-job"}},
        "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "uid-job",
                                             "job-name": "once"}},
                     "spec": {"restartPolicy": restart,
                              "containers": [{"name": "once", "image": "busybox"}]}},
    }
    if completions is not None:
        spec["completions"] = completions
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "once", "namespace": "default", "uid": "uid-job"},
            "spec": spec, "status": {}}


def jpod(name: str, phase: str = "Running", finished: float | None = None, **kw: Any) -> Obj:
    p = pod(name, labels={"job-name": "once"}, phase=phase, **kw)
    if finished is not None:
        p["status"]["containerStatuses"] = [{"name": "once", "restartCount": 0, "state": {
            "terminated": {"exitCode": 1 if phase == "Failed" else 0, "finishedAt": now_rfc3339(finished)}}}]
    return p


def types(status: Obj) -> list[tuple[str, str]]:
    return [(c["type"], c["status"]) for c in status.get("conditions") or []]


def test_creates_parallelism_pods_up_to_completions() -> None:
    """Given completions 5 and parallelism 2, then 2 pods are created named `<job>-`, owned by
    the Job; with 4 succeeded only 1 more runs."""
    p = plan(job(completions=5, parallelism=2), [], now=NOW)
    assert len(p.create) == 2 and p.create[0]["metadata"]["generateName"] == "once-"
    assert p.create[0]["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert p.status["startTime"] == now_rfc3339(NOW) and p.status["ready"] == 0
    done = [jpod(f"s{i}", "Succeeded") for i in range(4)]
    assert len(plan(job(completions=5, parallelism=2), done, now=NOW).create) == 1


def test_completes_after_success() -> None:
    """Given one pod Succeeded (completions 1), then SuccessCriteriaMet and Complete (reason
    CompletionsReached), completionTime, `succeeded: 1`, a Completed event."""
    p = plan(job(), [jpod("a", "Succeeded")], now=NOW)
    assert types(p.status) == [(SUCCESS_CRITERIA_MET, "True"), (COMPLETE, "True")]
    assert p.status["conditions"][1]["reason"] == "CompletionsReached"
    assert p.status["succeeded"] == 1 and p.status["completionTime"] == now_rfc3339(NOW)
    assert ("Normal", "Completed", "Job completed") in p.events
    assert not p.create


def test_complete_waits_for_terminating_pods() -> None:
    """Given completions reached while another pod still runs, then that pod is deleted and
    Complete waits until no pod is active or terminating."""
    p = plan(job(completions=1, parallelism=2), [jpod("a", "Succeeded"), jpod("b")], now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["b"]
    assert types(p.status) == [(SUCCESS_CRITERIA_MET, "True")]


def test_backoff_limit_fails_job() -> None:
    """Given backoffLimit 1 and two failed pods, then FailureTarget and Failed with
    BackoffLimitExceeded and `failed: 2`."""
    pods = [jpod("a", "Failed", finished=NOW - 100), jpod("b", "Failed", finished=NOW - 50)]
    p = plan(job(backoff=1), pods, now=NOW)
    assert types(p.status) == [(FAILURE_TARGET, "True"), (FAILED, "True")]
    assert p.status["conditions"][1]["reason"] == "BackoffLimitExceeded"
    assert p.status["conditions"][1]["message"] == "Job has reached the specified backoff limit"
    assert p.status["failed"] == 2 and not p.create


def test_failed_pod_replaced_after_backoff() -> None:
    """Given one failed pod 3 s ago, then no pod is created before the 10 s back-off; after it,
    one is."""
    pods = [jpod("a", "Failed", finished=NOW - 3)]
    p = plan(job(), pods, now=NOW)
    assert not p.create and p.requeue_after is not None
    assert abs(p.requeue_after - (BACKOFF_BASE - 3)) < 0.2
    assert len(plan(job(), pods, now=NOW + BACKOFF_BASE).create) == 1


def test_active_deadline_fails_and_deletes_pods() -> None:
    """Given activeDeadlineSeconds 30 exceeded, then running pods are deleted and, once gone,
    Failed with DeadlineExceeded."""
    j = job(deadline=30)
    j["status"] = {"startTime": now_rfc3339(NOW - 31)}
    p = plan(j, [jpod("a")], now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["a"]
    assert types(p.status) == [(FAILURE_TARGET, "True")]
    j["status"] = p.status
    p = plan(j, [], now=NOW + 1)
    assert types(p.status)[-1] == (FAILED, "True")
    assert p.status["conditions"][-1]["reason"] == "DeadlineExceeded"


def test_work_queue_mode() -> None:
    """Given no completions (work queue) and parallelism 3, then 3 pods run; once one succeeded
    no new pod starts, and the Job completes when the others finish."""
    p = plan(job(completions=None, parallelism=3), [], now=NOW)
    assert len(p.create) == 3
    p = plan(job(completions=None, parallelism=3), [jpod("a", "Succeeded"), jpod("b")], now=NOW)
    assert not p.create and not types(p.status)
    p = plan(job(completions=None, parallelism=3), [jpod("a", "Succeeded"), jpod("b", "Succeeded")], now=NOW)
    assert types(p.status)[-1] == (COMPLETE, "True")


def test_ttl_after_finished() -> None:
    """Given a Job completed 5 s ago with ttlSecondsAfterFinished 10, then it is looked at again
    in 5 s, and deleted after that."""
    j = job(ttl=10)
    j["status"] = plan(j, [jpod("a", "Succeeded")], now=NOW - 5).status
    p = plan(j, [jpod("a", "Succeeded")], now=NOW)
    assert not p.delete_job and p.requeue_after is not None and 4.9 < p.requeue_after < 5.2
    assert plan(j, [jpod("a", "Succeeded")], now=NOW + 5.1).delete_job


def test_suspend_deletes_active_pods() -> None:
    """Given suspend, then active pods are deleted and Suspended is True; on resume, Suspended
    False and pods are created again."""
    j = job()
    j["spec"]["suspend"] = True
    p = plan(j, [jpod("a")], now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["a"] and types(p.status) == [(SUSPENDED, "True")]
    j["status"] = p.status
    j["spec"]["suspend"] = False
    p = plan(j, [], now=NOW)
    assert types(p.status) == [(SUSPENDED, "False")] and len(p.create) == 1
