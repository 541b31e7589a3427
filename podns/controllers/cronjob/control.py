"""The CronJob control: one CronJob and its Jobs -> this step's Job creation, deletions, status
(Kubernetes `pkg/controller/cronjob/cronjob_controllerv2.go`, `utils.go`).

Pure. `plan(cj, jobs, now=...)`:

- `status.active` follows the Jobs: finished ones leave it (`SawCompletedJob`; a Complete one
  moves `lastSuccessfulTime`), vanished ones too (`MissingJob`);
- the most recent activation of `schedule` (in `timeZone`, else the controller's zone) after
  `lastScheduleTime` (else the CronJob's creation) is run once, however many were missed while the
  controller was down (more than 100 misses: a `TooManyMissedTimes` warning); with
  `startingDeadlineSeconds` only activations within that window count, an older one is
  `MissSchedule`;
- `concurrencyPolicy`: Allow runs Jobs side by side; Forbid skips an activation while one runs
  (`JobAlreadyActive`); Replace deletes the running ones first;
- the Job is `<cronjob>-<activation in minutes since the epoch>` from `jobTemplate`, annotated
  with `batch.kubernetes.io/cronjob-scheduled-timestamp`, owned by the CronJob;
- finished Jobs beyond `successfulJobsHistoryLimit` (3) / `failedJobsHistoryLimit` (1) are
  deleted, oldest first;
- `suspend` stops new activations; bad schedules or zones are reported, not retried.

`requeue_after` is the time to the next activation.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podns.objects import (
    Obj,
    cron,
    get_condition,
    meta_of,
    name_of,
    namespace_of,
    now_rfc3339,
    owner_reference,
    parse_time,
)

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
#: Kubernetes reports (and still runs the latest of) more missed activations than this
MAX_MISSED = 100


@dataclass(slots=True)
class CronPlan:
    """This step's Job to create (None: none), Jobs to delete (copies), status, events
    (type, reason, message) and when to look again (seconds; None = only on the next change)."""

    create: Obj | None = None
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue_after: float | None = None


def _spec(cj: Mapping[str, Any]) -> Mapping[str, Any]:
    return cj.get("spec") or {}


def finished(job: Mapping[str, Any]) -> str | None:
    """"Complete" or "Failed" for a finished Job, else None."""
    for ctype in ("Complete", "Failed"):
        cond = get_condition(job, ctype)
        if cond and cond.get("status") == "True":
            return ctype
    return None


def job_reference(job: Mapping[str, Any]) -> Obj:
    return {"kind": "Job", "namespace": namespace_of(job), "name": name_of(job),
            "uid": meta_of(job).get("uid", ""), "apiVersion": "batch/v1",
            "resourceVersion": str(meta_of(job).get("resourceVersion", ""))}


def job_name(cj: Mapping[str, Any], scheduled: float) -> str:
    """`getJobName`: the CronJob name and the activation in minutes since the epoch."""
    return f"{name_of(cj)}-{int(scheduled) // 60}"


def new_job(cj: Mapping[str, Any], scheduled: float, tz: dt.tzinfo) -> Obj:
    """The Job of one activation (`getJobFromTemplate2`)."""
    template = _spec(cj).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = dt.datetime.fromtimestamp(scheduled, tz).isoformat()
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(cj, scheduled),
            "namespace": namespace_of(cj),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference({"apiVersion": "batch/v1", "kind": "CronJob", **cj})],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }


def plan(cj: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]], *, now: float) -> CronPlan:
    """This step for CronJob `cj`; `jobs` are the Jobs it controls."""
    result = CronPlan()
    old = dict(cj.get("status") or {})
    status: Obj = {k: v for k, v in old.items() if k in ("lastScheduleTime", "lastSuccessfulTime")}
    by_uid = {str(meta_of(j).get("uid", "")): j for j in jobs}
    active: list[Obj] = []
    for ref in old.get("active") or []:
        job = by_uid.get(str(ref.get("uid")))
        if job is None:
            result.events.append(("Normal", "MissingJob", f"Active job went missing: {ref.get('name')}"))
            continue
        state = finished(job)
        if state is not None:
            result.events.append(("Normal", "SawCompletedJob",
                                  f"Saw completed job: {name_of(job)}, condition: {state}"))
            continue
        active.append(job_reference(job))
    listed = {r["uid"] for r in active}
    for job in jobs:  # running Jobs we own but did not list (e.g. created before a crash)
        if finished(job) is None and str(meta_of(job).get("uid", "")) not in listed:
            active.append(job_reference(job))
    for job in jobs:
        if finished(job) == "Complete":
            done = (job.get("status") or {}).get("completionTime")
            if done and (parse_time(done) or 0) > (parse_time(status.get("lastSuccessfulTime")) or 0):
                status["lastSuccessfulTime"] = done
    result.status = status
    if active:
        status["active"] = sorted(active, key=lambda r: r["name"])
    result.delete = _history(cj, jobs)
    if meta_of(cj).get("deletionTimestamp"):
        return result
    try:
        tz = cron.zone(_spec(cj).get("timeZone"))
    except cron.CronError:
        result.events.append(("Warning", "UnknownTimeZone",
                              f"invalid timeZone: {_spec(cj).get('timeZone')!r}"))
        return result
    try:
        schedule = cron.parse(str(_spec(cj).get("schedule") or ""))
    except cron.CronError as exc:
        result.events.append(("Warning", "UnparseableSchedule",
                              f"unparseable schedule: {_spec(cj).get('schedule')!r} : {exc}"))
        return result
    if _spec(cj).get("suspend"):
        return result
    result.requeue_after = max(0.0, schedule.next(now, tz) - now) + 0.1
    scheduled = _most_recent(cj, schedule, tz, now, result)
    if scheduled is None:
        return result
    deadline = _spec(cj).get("startingDeadlineSeconds")
    if deadline is not None and scheduled + int(deadline) < now:
        result.events.append(("Warning", "MissSchedule",
                              f"Missed scheduled time to start a job: {now_rfc3339(scheduled)}"))
        return result
    name = job_name(cj, scheduled)
    if any(r["name"] == name for r in active) or any(name_of(j) == name for j in jobs) \
            or status.get("lastScheduleTime") == now_rfc3339(scheduled):
        return result
    policy = _spec(cj).get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        result.events.append(("Normal", "JobAlreadyActive",
                              "Not starting job because prior execution is running and concurrency "
                              "policy is Forbid"))
        return result
    if policy == "Replace":
        for ref in active:
            job = by_uid.get(ref["uid"])
            if job is not None:
                result.delete.append(copy.deepcopy(dict(job)))
        status.pop("active", None)
    result.create = new_job(cj, scheduled, tz)
    status["lastScheduleTime"] = now_rfc3339(scheduled)
    return result


def _most_recent(cj: Mapping[str, Any], schedule: cron.Schedule, tz: dt.tzinfo, now: float,
                 result: CronPlan) -> float | None:
    """`mostRecentScheduleTime`: the latest activation not yet run, or None."""
    status = cj.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(meta_of(cj).get("creationTimestamp"))
    if earliest is None:
        earliest = now
    deadline = _spec(cj).get("startingDeadlineSeconds")
    if deadline is not None:
        earliest = max(earliest, now - int(deadline))
    found, count = schedule.times_between(earliest, now, tz, MAX_MISSED)
    if count > MAX_MISSED:
        result.events.append(("Warning", "TooManyMissedTimes",
                              f"too many missed start times: {count}. Set or decrease "
                              ".spec.startingDeadlineSeconds or check clock skew"))
    return found[-1] if found else None


def _history(cj: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]]) -> list[Obj]:
    """Finished Jobs beyond the history limits, oldest first."""
    out: list[Obj] = []
    for state, key, default in (("Complete", "successfulJobsHistoryLimit", 3),
                                ("Failed", "failedJobsHistoryLimit", 1)):
        limit = _spec(cj).get(key)
        limit = default if limit is None else int(limit)
        done = sorted((j for j in jobs if finished(j) == state and not meta_of(j).get("deletionTimestamp")),
                      key=lambda j: (parse_time((j.get("status") or {}).get("startTime")
                                                or meta_of(j).get("creationTimestamp")) or 0.0, name_of(j)))
        excess = len(done) - limit
        if excess > 0:
            out.extend(copy.deepcopy(dict(j)) for j in done[:excess])
    return out
