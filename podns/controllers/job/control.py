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


def plan(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], *, now: float) -> JobPlan:
    """This step for `job`; `pods` are all pods it controls."""
    spec = _spec(job)
    stamp = now_rfc3339(now)
    result = JobPlan()
    old = dict(job.get("status") or {})
    live = [p for p in pods if not is_terminating(p)]
    active = [p for p in live if phase_of(p) not in ("Succeeded", "Failed")]
    succeeded = sum(1 for p in pods if phase_of(p) == "Succeeded")
    failed_pods = [p for p in pods if phase_of(p) == "Failed"]
    terminating = sum(1 for p in pods if is_terminating(p) and phase_of(p) not in ("Succeeded", "Failed"))
    conditions: list[Obj] = [dict(c) for c in old.get("conditions") or []]
    status: Obj = {k: v for k, v in old.items() if k in ("startTime", "completionTime")}

    finished = is_finished(job)
    if finished is not None:
        result.delete = [copy.deepcopy(dict(p)) for p in active]
        _ttl(job, finished[1], now, result)
        result.status = _counts(status, conditions, active=len(active), ready=0, succeeded=succeeded,
                                failed=len(failed_pods), terminating=terminating)
        return result

    suspended = bool(spec.get("suspend"))
    if suspended:
        result.delete = [copy.deepcopy(dict(p)) for p in active]
        if not get_condition({"status": {"conditions": conditions}}, SUSPENDED):
            result.events.append(("Normal", "Suspended", "Job suspended"))
        conditions = _with_condition(
            conditions, _condition(SUSPENDED, ("JobSuspended", "Job suspended"), stamp))
        status.pop("startTime", None)
        result.status = _counts(status, conditions, active=0, ready=0, succeeded=succeeded,
                                failed=len(failed_pods), terminating=terminating + len(active))
        return result
    if any(c.get("type") == SUSPENDED and c.get("status") == "True" for c in conditions):
        conditions = _with_condition(conditions, _condition(SUSPENDED, ("JobResumed", "Job resumed"), stamp,
                                                            "False"))
        result.events.append(("Normal", "Resumed", "Job resumed"))
    status.setdefault("startTime", stamp)
    started = parse_time(status["startTime"]) or now

    failure = _failure(job, spec, failed_pods, active, started, now, result)
    target = next((c for c in conditions if c.get("type") in (FAILURE_TARGET, SUCCESS_CRITERIA_MET)
                   and c.get("status") == "True"), None)
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism", 1) or 0)
    done = (succeeded >= int(completions) if completions is not None
            else succeeded > 0 and not active)
    if target is None and failure is not None:
        target = _condition(FAILURE_TARGET, failure, stamp)
        conditions = _with_condition(conditions, target)
    elif target is None and done:
        target = _condition(SUCCESS_CRITERIA_MET, COMPLETIONS_REACHED, stamp)
        conditions = _with_condition(conditions, target)

    if target is not None:
        result.delete = [copy.deepcopy(dict(p)) for p in active]
        if not active and not terminating:
            final = COMPLETE if target["type"] == SUCCESS_CRITERIA_MET else FAILED
            reason = (str(target.get("reason")), str(target.get("message")))
            conditions = _with_condition(conditions, _condition(final, reason, stamp))
            if final == COMPLETE:
                status["completionTime"] = stamp
                result.events.append(("Normal", "Completed", "Job completed"))
            else:
                result.events.append(("Warning", reason[0], reason[1]))
            _ttl(job, now, now, result)
        result.status = _counts(status, conditions, active=len(active), ready=0, succeeded=succeeded,
                                failed=len(failed_pods), terminating=terminating)
        return result

    want = parallelism if completions is None else max(0, min(parallelism, int(completions) - succeeded))
    if completions is None and succeeded > 0:
        want = min(want, len(active))  # work queue: once one succeeded, no new pods
    if len(active) > want:
        result.delete = [copy.deepcopy(dict(p)) for p in deletion_order(active)[:len(active) - want]]
    elif len(active) < want:
        wait = _backoff_wait(failed_pods, now)
        if wait > 0:
            result.wake(wait)
        else:
            result.create = [new_pod(job) for _ in range(want - len(active))]
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None:
        result.wake(started + int(deadline) - now)
    ready = sum(1 for p in active if pod_is_ready(p))
    result.status = _counts(status, conditions, active=len(active), ready=ready, succeeded=succeeded,
                            failed=len(failed_pods), terminating=terminating)
    return result


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
