"""The CronJob control as a specification: CronJob + Jobs -> this step's Job and status."""

from __future__ import annotations

from typing import Any

from podns.controllers.cronjob.control import SCHEDULED_TIMESTAMP, plan
from podns.objects import now_rfc3339

Obj = dict[str, Any]
#: 2027-01-15T08:00:00Z, a whole minute
T0 = 1_800_000_000.0 - 1_800_000_000.0 % 60


def cronjob(schedule: str = "*/1 * * * *", *, policy: str = "Allow", deadline: int | None = None,
            last: float | None = None, created: float = T0 - 3600, tz: str | None = "UTC") -> Obj:
    pod_spec = {"restartPolicy": "OnFailure", "containers": [{"name": "t", "image": "b"}]}
    spec: Obj = {"schedule": schedule, "concurrencyPolicy": policy, "suspend": False,
                 "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                 "jobTemplate": {"metadata": {"labels": {"app": "tick"}},
                                 "spec": {"template": {"spec": pod_spec}}}}
    if tz:
        spec["timeZone"] = tz
    if deadline is not None:
        spec["startingDeadlineSeconds"] = deadline
    status: Obj = {}
    if last is not None:
        status["lastScheduleTime"] = now_rfc3339(last)
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "tick", "namespace": "default", "uid": "uid-cj",
                         "creationTimestamp": now_rfc3339(created)},
            "spec": spec, "status": status}


def job(name: str, *, state: str | None = None, started: float = T0) -> Obj:
    status: Obj = {"startTime": now_rfc3339(started)}
    if state:
        status["conditions"] = [{"type": state, "status": "True"}]
    if state == "Complete":
        status["completionTime"] = now_rfc3339(started + 5)
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7"},
            "status": status}


def test_runs_the_due_activation_once() -> None:
    """Given `*/1` last run a minute ago, then the Job `tick-<minutes>` of this minute is created
    with the scheduled-timestamp annotation and owner; lastScheduleTime moves; the next look is
    at the next minute."""
    p = plan(cronjob(last=T0 - 60), [], now=T0 + 5)
    assert p.create is not None and p.create["metadata"]["name"] == f"tick-{int(T0) // 60}"
    assert p.create["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2027-01-15T08:00:00+00:00"
    assert p.create["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert p.create["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure"
    assert p.status["lastScheduleTime"] == now_rfc3339(T0)
    assert p.requeue_after is not None and 55 <= p.requeue_after <= 56


def test_after_downtime_only_the_latest_missed_run_starts() -> None:
    """Given the controller was down for 10 activations, then one Job starts, for the latest."""
    p = plan(cronjob(last=T0 - 600), [], now=T0 + 1)
    assert p.create is not None and p.create["metadata"]["name"] == f"tick-{int(T0) // 60}"
    assert not [e for e in p.events if e[1] == "TooManyMissedTimes"]


def test_too_many_missed_is_reported() -> None:
    """Given more than 100 missed activations, then a TooManyMissedTimes warning, and the latest
    still runs."""
    p = plan(cronjob(last=T0 - 200 * 60), [], now=T0 + 1)
    assert p.create is not None and any(e[1] == "TooManyMissedTimes" for e in p.events)


def test_starting_deadline_misses_old_activation() -> None:
    """Given startingDeadlineSeconds 10 and an activation 30 s ago, then no Job starts."""
    p = plan(cronjob(deadline=10, last=T0 - 60), [], now=T0 + 30)
    assert p.create is None


def test_forbid_skips_while_running_and_replace_deletes() -> None:
    """Given a Job still running, then Forbid skips the activation (JobAlreadyActive), Replace
    deletes the running Job and starts a new one, Allow starts one beside it."""
    running = job("tick-1", started=T0 - 60)
    cj = cronjob(policy="Forbid", last=T0 - 60)
    cj["status"]["active"] = [{"kind": "Job", "name": "tick-1", "namespace": "default", "uid": "uid-tick-1"}]
    p = plan(cj, [running], now=T0 + 1)
    assert p.create is None and any(e[1] == "JobAlreadyActive" for e in p.events)
    cj["spec"]["concurrencyPolicy"] = "Replace"
    p = plan(cj, [running], now=T0 + 1)
    assert p.create is not None and [j["metadata"]["name"] for j in p.delete] == ["tick-1"]
    cj["spec"]["concurrencyPolicy"] = "Allow"
    p = plan(cj, [running], now=T0 + 1)
    assert p.create is not None and not p.delete and len(p.status["active"]) == 1


def test_finished_jobs_leave_active_and_history_is_trimmed() -> None:
    """Given 5 Complete Jobs and 2 Failed ones, then the 2 oldest Complete and the older Failed are
    deleted, active is empty, lastSuccessfulTime is the newest completion."""
    jobs = [job(f"ok-{i}", state="Complete", started=T0 - 600 + i * 60) for i in range(5)]
    jobs += [job(f"bad-{i}", state="Failed", started=T0 - 600 + i * 60) for i in range(2)]
    cj = cronjob(last=T0)
    cj["status"]["active"] = [{"kind": "Job", "name": "ok-4", "namespace": "default", "uid": "uid-ok-4"}]
    p = plan(cj, jobs, now=T0 + 1)
    assert sorted(j["metadata"]["name"] for j in p.delete) == ["bad-0", "ok-0", "ok-1"]
    assert "active" not in p.status
    assert p.status["lastSuccessfulTime"] == now_rfc3339(T0 - 600 + 4 * 60 + 5)
    assert any(e[1] == "SawCompletedJob" for e in p.events)


def test_time_zone_and_bad_input() -> None:
    """Given `0 9 * * *` in Asia/Tokyo, then it runs at 00:00 UTC; an unknown zone or a bad
    schedule is reported as a warning and nothing runs."""
    day = T0 - T0 % 86400  # 2027-01-15T00:00:00Z = 09:00 in Tokyo
    p = plan(cronjob("0 9 * * *", tz="Asia/Tokyo", last=day - 86400), [], now=day + 30)
    assert p.create is not None
    assert p.create["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2027-01-15T09:00:00+09:00"
    p = plan(cronjob(tz="Nowhere/City"), [], now=T0)
    assert p.create is None and p.events[0][1] == "UnknownTimeZone"
    p = plan(cronjob("61 * * * *"), [], now=T0)
    assert p.create is None and p.events[0][1] == "UnparseableSchedule"
