"""The Job controller: informers -> queue of Job keys -> `sync` -> pods, status, TTL deletion.

Handlers enqueue the Job a pod belongs to (its controller owner reference), or for an orphan pod
the Jobs of its namespace whose selector matches it. `sync` re-reads the Job and its pods from
the caches, adopts and releases pods by selector (`_owned.claim`), asks the pure
`control.plan` for this step, applies it through `_podcontrol.PodControl` (while our own earlier
creations are not cached yet it does not create more), writes the status when it changed,
records the step's events (`Completed`, `BackoffLimitExceeded`, ...) and deletes a finished Job
whose `ttlSecondsAfterFinished` passed (propagation Background: the garbage collector removes its
pods).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._owned import claim_owned, watch_owned
from podns.controllers._podcontrol import PodControl
from podns.controllers.job import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import JOBS, PODS
from podns.objects import (
    Obj,
    SelectorError,
    meta_of,
    name_of,
    namespace_of,
    owner_reference,
    validate_label_selector,
)

log = logging.getLogger(__name__)


def _with_kind(job: Obj) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", **job}


class JobController(workerloop.Controller):
    """Runs Jobs' pods to completion."""

    name = "job-controller"
    max_retries = None  # requeued with back-off until it succeeds, as upstream
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.jobs = informers.get(JOBS)
        self.pods = informers.get(PODS)
        self.pod_control = PodControl(client, self.pods, recorder)
        watch_owned(self, "Job", self.jobs, self.pods)

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        job = self.jobs.get(key)
        if job is None:
            self.pod_control.forget(key)
            return  # gone: the garbage collector removes its pods
        job = _with_kind(job)
        selector = (job.get("spec") or {}).get("selector")
        try:
            validate_label_selector(selector)
            if not selector:
                raise SelectorError("empty selector")
        except SelectorError as exc:
            self.pod_control.event(job, WARNING, "InvalidSelector", f"invalid selector: {exc}")
            return  # non-transient
        pods = await claim_owned(self.client, PODS, self.pods, job, owner_reference(job), selector)
        step = control.plan(job, pods, now=time.time())
        if not self.pod_control.satisfied(key):
            step.create = []
        try:
            await self.pod_control.apply(job, key, step.create, step.delete)
        finally:
            await self._write_status(job, step.status)
        for type_, reason, text in step.events:
            self.pod_control.event(job, type_, reason, text)
        if step.delete_job:
            try:
                await self.client.delete(JOBS, name_of(job), namespace_of(job),
                                         propagation_policy="Background",
                                         preconditions={"uid": str(meta_of(job).get("uid", ""))})
            except (errors.NotFound, errors.Conflict):
                pass  # gone, or replaced by a new Job of the same name
            return
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    async def _write_status(self, job: Obj, status: Mapping[str, Any]) -> None:
        old = job.get("status") or {}
        if old == status:
            return
        try:
            await self.client.update_status(JOBS, {**job, "status": dict(status)})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of Job {name_of(job)}") from None


__all__ = ["JobController"]
