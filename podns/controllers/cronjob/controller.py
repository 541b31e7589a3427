"""The CronJob controller: informers -> queue of CronJob keys -> `sync` -> Jobs and status.

Handlers enqueue the CronJob a Job belongs to (its controller owner reference). `sync` re-reads
the CronJob and its Jobs from the caches, asks the pure `control.plan` for this step and applies
it: deletions (Replace policy, history limits; propagation Background, so the garbage collector
takes their pods), the new Job, the status when it changed, then the step's events. It looks
again at the next activation (`queue.add_after`), so schedules need no polling.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.controllers._owned import BY_CONTROLLER, controller_key, controller_uid, watch_owner
from podns.controllers._podcontrol import message
from podns.controllers.cronjob import control
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import CRONJOBS, JOBS
from podns.objects import Obj, meta_of, name_of, namespace_of

log = logging.getLogger(__name__)


class CronJobController(workerloop.Controller):
    """Starts Jobs on schedule."""

    name = "cronjob-controller"
    max_retries = None  # requeued with back-off until it succeeds, as upstream
    workers = 2

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.cronjobs = informers.get(CRONJOBS)
        self.jobs = informers.get(JOBS)
        _ensure_index(self.jobs, BY_CONTROLLER, controller_uid)
        watch_owner(self, self.cronjobs)
        self.jobs.add_handler(on_add=self._on_job, on_update=lambda _o, n: self._on_job(n),
                              on_delete=self._on_job)

    def _on_job(self, job: Obj) -> None:
        key = controller_key(job, "CronJob")
        if key is not None:
            self.enqueue(key)

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        cj = self.cronjobs.get(key)
        if cj is None:
            return  # gone: the garbage collector removes its Jobs
        cj = {"apiVersion": "batch/v1", "kind": "CronJob", **cj}
        jobs = self.jobs.by_index(BY_CONTROLLER, str(meta_of(cj).get("uid", "")))
        step = control.plan(cj, jobs, now=time.time())
        for job in step.delete:
            try:
                await self.client.delete(JOBS, name_of(job), namespace_of(job),
                                         propagation_policy="Background")
            except errors.NotFound:
                continue
            except errors.KubeError as exc:
                self._event(cj, WARNING, "FailedDelete", f"Deleted job: {message(exc)}")
                raise
            self._event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {name_of(job)}")
        if step.create is not None:
            try:
                created = await self.client.create(JOBS, step.create, namespace_of(cj))
            except errors.AlreadyExists:
                created = None  # made before our cache saw it: the status still records the run
            except errors.KubeError as exc:
                self._event(cj, WARNING, "FailedCreate", f"Error creating job: {message(exc)}")
                raise
            if created is not None:
                refs = [*(step.status.get("active") or []), control.job_reference(created)]
                step.status["active"] = sorted(refs, key=lambda r: r["name"])
                self._event(cj, NORMAL, "SuccessfulCreate", f"Created job {name_of(created)}")
        await self._write_status(cj, step.status)
        for type_, reason, text in step.events:
            self._event(cj, type_, reason, text)
        if step.requeue_after is not None:
            self.queue.add_after(key, step.requeue_after)

    def _event(self, cj: Obj, type_: str, reason: str, text: str) -> None:
        if self.recorder is not None:
            self.recorder.event(cj, type_, reason, text)

    async def _write_status(self, cj: Obj, status: Mapping[str, Any]) -> None:
        old = cj.get("status") or {}
        if _comparable(old) == _comparable(status):
            return
        try:
            await self.client.update_status(CRONJOBS, {**cj, "status": dict(status)})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(f"status of CronJob {name_of(cj)}") from None


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without the Jobs' resourceVersions (they change with every Job status write)."""
    out = dict(status)
    out["active"] = [{k: v for k, v in r.items() if k != "resourceVersion"}
                     for r in status.get("active") or []]
    return out


__all__ = ["CronJobController"]
