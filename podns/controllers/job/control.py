"""The Job control: one Job and its pods -> this step's pod creations, deletions and status
(Kubernetes `pkg/controller/job/job_controller.go`).

Pure. `plan(job, pods, now=...)`:

- counts: `succeeded` and `failed` are the owned pods in those phases (Kubernetes' legacy
  tracking: finished pods are kept until the Job goes, so they are the record), `active` the
  running or pending ones, `ready` those Ready, `terminating` those being deleted;
- failure: more failed pods than `backoffLimit` (with restartPolicy OnFailure, container restarts
  count as failures), or running longer than `activeDeadlineSeconds` since `startTime`: the
  `FailureTarget` condition at once, active pods deleted, then `Failed` (reason
  `BackoffLimitExceeded` / `DeadlineExceeded`) when none is left;
- success: `completions` pods succeeded (or, without `completions`, any pod succeeded and none is
  active): `SuccessCriteriaMet`, remaining pods deleted, then `Complete` with `completionTime`;
- otherwise keep `min(parallelism, completions - succeeded)` pods active: create the missing ones
  (`generateName: <job>-`, the template with the Job's labels), or delete the surplus, in the
  ReplicaSet's order; after a failure new pods wait `10 s * 2^(failures-1)` (at most 6 min),
  Kubernetes' pod failure back-off;
- `suspend: true` deletes active pods and sets `Suspended`; resuming resets `startTime`;
- a finished Job with `ttlSecondsAfterFinished` is deleted that long after it finished
  (Kubernetes' TTL-after-finished controller, folded in here).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from podns.controllers.replicaset.control import deletion_order
from podns.objects import (
    Obj,
    get_condition,
    is_terminating,
    meta_of,
    name_of,
    namespace_of,
    now_rfc3339,
    owner_reference,
    parse_time,
    phase_of,
    pod_is_ready,
)

#: Kubernetes' `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff` (seconds)
BACKOFF_BASE = 10.0
BACKOFF_MAX = 360.0
COMPLETE, FAILED, SUSPENDED = "Complete", "Failed", "Suspended"
SUCCESS_CRITERIA_MET, FAILURE_TARGET = "SuccessCriteriaMet", "FailureTarget"
COMPLETIONS_REACHED = ("CompletionsReached", "Reached expected number of succeeded pods")
BACKOFF_EXCEEDED = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE_EXCEEDED = ("DeadlineExceeded", "Job was active longer than specified deadline")


@dataclass(slots=True)
class JobPlan:
    """This step's pods to create (bodies) and delete (copies), the status to write, events
    (type, reason, message) to record once the writes succeeded, whether to delete the Job
    itself (TTL), and when to look again (seconds; None = only on the next change)."""

    create: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    status: Obj = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    delete_job: bool = False
    requeue_after: float | None = None

    def wake(self, seconds: float) -> None:
        """Ask to be looked at again within `seconds` (the earliest request wins)."""
        seconds = max(0.0, seconds) + 0.05
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def _spec(job: Mapping[str, Any]) -> Mapping[str, Any]:
    return job.get("spec") or {}


def is_finished(job: Mapping[str, Any]) -> tuple[str, float | None] | None:
    """("Complete" | "Failed", when) of a finished Job, else None."""
    for ctype in (COMPLETE, FAILED):
        cond = get_condition(job, ctype)
        if cond and cond.get("status") == "True":
            return ctype, parse_time(cond.get("lastTransitionTime"))
    return None


def new_pod(job: Mapping[str, Any]) -> Obj:
    """A pod from the Job's template, owned by the Job."""
    template = _spec(job).get("template") or {}
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{name_of(job)}-",
        "namespace": namespace_of(job),
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [owner_reference({"apiVersion": "batch/v1", "kind": "Job", **job})],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _condition(ctype: str, reason: tuple[str, str], stamp: str, status: str = "True") -> Obj:
    return {"type": ctype, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason[0], "message": reason[1]}


def _with_condition(conditions: list[Obj], cond: Obj) -> list[Obj]:
    """`conditions` with `cond` added, or replacing one of its type whose status differs."""
    old = next((c for c in conditions if c.get("type") == cond["type"]), None)
    if old is not None and old.get("status") == cond["status"] and old.get("reason") == cond["reason"]:
        return conditions
    return [*(c for c in conditions if c.get("type") != cond["type"]), cond]


def _finished_at(pod: Mapping[str, Any]) -> float | None:
    times = [parse_time(((c.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for c in (pod.get("status") or {}).get("containerStatuses") or []]
    known = [t for t in times if t is not None]
    if known:
        return max(known)
    cond = get_condition(pod, "Ready")
    since = parse_time((cond or {}).get("lastTransitionTime"))
    return since if since is not None else parse_time(meta_of(pod).get("creationTimestamp"))


def _restarts(pods: Sequence[Mapping[str, Any]]) -> int:
    return sum(int(c.get("restartCount") or 0) for p in pods
               for c in (p.get("status") or {}).get("containerStatuses") or [])


@dataclass(slots=True)
class _Observed:
    """The job's pods as one step counts them."""

    active: list[Mapping[str, Any]]
    succeeded: int
    failed: list[Mapping[str, Any]]
    terminating: int

    @classmethod
    def of(cls, pods: Sequence[Mapping[str, Any]]) -> _Observed:
        ended = ("Succeeded", "Failed")
        return cls(
            active=[p for p in pods if not is_terminating(p) and phase_of(p) not in ended],
            succeeded=sum(1 for p in pods if phase_of(p) == "Succeeded"),
            failed=[p for p in pods if phase_of(p) == "Failed"],
            terminating=sum(1 for p in pods if is_terminating(p) and phase_of(p) not in ended),
        )

    def status(self, status: Obj, conditions: list[Obj], *, ready: int = 0, active: int | None = None,
               terminating: int | None = None) -> Obj:
        return _counts(status, conditions, active=len(self.active) if active is None else active,
                       ready=ready, succeeded=self.succeeded, failed=len(self.failed),
                       terminating=self.terminating if terminating is None else terminating)


def plan(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], *, now: float) -> JobPlan:
    """This step for `job`; `pods` are all pods it controls.

    Phases, as Kubernetes' job controller: a finished Job only cleans up (TTL); a suspended one
    deletes its pods; otherwise the step decides whether the Job has met its success or failure
    criteria (then it winds down and finishes), or else scales its pods toward parallelism."""
    stamp = now_rfc3339(now)
    result = JobPlan()
    old = dict(job.get("status") or {})
    seen = _Observed.of(pods)
    conditions: list[Obj] = [dict(c) for c in old.get("conditions") or []]
    status: Obj = {k: v for k, v in old.items() if k in ("startTime", "completionTime")}

    finished = is_finished(job)
    if finished is not None:
        result.delete = [copy.deepcopy(dict(p)) for p in seen.active]
        _ttl(job, finished[1], now, result)
        result.status = seen.status(status, conditions)
        return result
    if bool(_spec(job).get("suspend")):
        return _suspend(seen, status, conditions, stamp, result)
    if any(c.get("type") == SUSPENDED and c.get("status") == "True" for c in conditions):
        conditions = _with_condition(conditions, _condition(SUSPENDED, ("JobResumed", "Job resumed"), stamp,
                                                            "False"))
        result.events.append(("Normal", "Resumed", "Job resumed"))
    status.setdefault("startTime", stamp)
    started = parse_time(status["startTime"]) or now
    target, conditions = _target(job, seen, conditions, started, now, stamp, result)
    if target is not None:
        return _wind_down(job, seen, target, status, conditions, now, stamp, result)
    _scale(job, seen, started, now, result)
    ready = sum(1 for p in seen.active if pod_is_ready(p))
    result.status = seen.status(status, conditions, ready=ready)
    return result


def _suspend(seen: _Observed, status: Obj, conditions: list[Obj], stamp: str, result: JobPlan) -> JobPlan:
    """A suspended Job: its active pods deleted, the Suspended condition set, no start time."""
    result.delete = [copy.deepcopy(dict(p)) for p in seen.active]
    if not get_condition({"status": {"conditions": conditions}}, SUSPENDED):
        result.events.append(("Normal", "Suspended", "Job suspended"))
    conditions = _with_condition(conditions, _condition(SUSPENDED, ("JobSuspended", "Job suspended"), stamp))
    status.pop("startTime", None)
    result.status = seen.status(status, conditions, active=0,
                                terminating=seen.terminating + len(seen.active))
    return result


def _target(job: Mapping[str, Any], seen: _Observed, conditions: list[Obj], started: float, now: float,
            stamp: str, result: JobPlan) -> tuple[Obj | None, list[Obj]]:
    """The FailureTarget or SuccessCriteriaMet condition the Job has reached (set now if it
    reaches it in this step), or None; and the conditions with it."""
    spec = _spec(job)
    failure = _failure(job, spec, seen.failed, seen.active, started, now, result)
    target = next((c for c in conditions if c.get("type") in (FAILURE_TARGET, SUCCESS_CRITERIA_MET)
                   and c.get("status") == "True"), None)
    completions = spec.get("completions")
    done = (seen.succeeded >= int(completions) if completions is not None
            else seen.succeeded > 0 and not seen.active)
    if target is None and failure is not None:
        target = _condition(FAILURE_TARGET, failure, stamp)
        conditions = _with_condition(conditions, target)
    elif target is None and done:
        target = _condition(SUCCESS_CRITERIA_MET, COMPLETIONS_REACHED, stamp)
        conditions = _with_condition(conditions, target)
    return target, conditions


def _wind_down(job: Mapping[str, Any], seen: _Observed, target: Obj, status: Obj, conditions: list[Obj],
               now: float, stamp: str, result: JobPlan) -> JobPlan:
    """A Job past its target: delete the active pods, and once none is left, finish (Complete or
    Failed) with its event and TTL."""
    result.delete = [copy.deepcopy(dict(p)) for p in seen.active]
    if not seen.active and not seen.terminating:
        final = COMPLETE if target["type"] == SUCCESS_CRITERIA_MET else FAILED
        reason = (str(target.get("reason")), str(target.get("message")))
        conditions = _with_condition(conditions, _condition(final, reason, stamp))
        if final == COMPLETE:
            status["completionTime"] = stamp
            result.events.append(("Normal", "Completed", "Job completed"))
        else:
            result.events.append(("Warning", reason[0], reason[1]))
        _ttl(job, now, now, result)
    result.status = seen.status(status, conditions)
    return result


def _scale(job: Mapping[str, Any], seen: _Observed, started: float, now: float, result: JobPlan) -> None:
    """Pods toward `parallelism` (bounded by the completions left; a work queue adds none once one
    succeeded), creations held back by the failure back-off; a wake-up at the active deadline."""
    spec = _spec(job)
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1) or 0)
    active = seen.active
    want = parallelism if completions is None else max(0, min(parallelism, int(completions) - seen.succeeded))
    if completions is None and seen.succeeded > 0:
        want = min(want, len(active))  # work queue: once one succeeded, no new pods
    if len(active) > want:
        result.delete = [copy.deepcopy(dict(p)) for p in deletion_order(active)[:len(active) - want]]
    elif len(active) < want:
        wait = _backoff_wait(seen.failed, now)
        if wait > 0:
            result.wake(wait)
        else:
            result.create = [new_pod(job) for _ in range(want - len(active))]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        result.wake(started + int(deadline) - now)


def _failure(job: Mapping[str, Any], spec: Mapping[str, Any], failed: Sequence[Mapping[str, Any]],
             active: Sequence[Mapping[str, Any]], started: float, now: float, result: JobPlan
             ) -> tuple[str, str] | None:
    limit = int(spec.get("backoffLimit", 6) if spec.get("backoffLimit") is not None else 6)
    restarts = 0
    restart_policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    if restart_policy == "OnFailure":
        restarts = _restarts(active)
    if len(failed) + restarts > limit:
        return BACKOFF_EXCEEDED
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and now - started >= int(deadline):
        return DEADLINE_EXCEEDED
    return None


def _backoff_wait(failed: Sequence[Mapping[str, Any]], now: float) -> float:
    """Seconds still to wait before replacing failed pods (0: go)."""
    if not failed:
        return 0.0
    last = max((_finished_at(p) or 0.0) for p in failed)
    delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (len(failed) - 1))
    return float(max(0.0, last + delay - now))


def _ttl(job: Mapping[str, Any], finished_at: float | None, now: float, result: JobPlan) -> None:
    ttl = _spec(job).get("ttlSecondsAfterFinished")
    if ttl is None or finished_at is None:
        return
    left = finished_at + int(ttl) - now
    if left <= 0 and is_finished(job) is not None:
        result.delete_job = True
    else:
        result.wake(max(left, 0.0))


def _counts(status: Obj, conditions: list[Obj], *, active: int, ready: int, succeeded: int, failed: int,
            terminating: int) -> Obj:
    """The status with its counts; zero counts are omitted (`omitempty`), except `ready` and
    `terminating`, which Kubernetes writes as pointers once it tracks them."""
    out = dict(status)
    for key, value in (("active", active), ("succeeded", succeeded), ("failed", failed)):
        if value:
            out[key] = value
    out["ready"] = ready
    out["terminating"] = terminating
    out["uncountedTerminatedPods"] = {}
    if conditions:
        out["conditions"] = conditions
    return out
