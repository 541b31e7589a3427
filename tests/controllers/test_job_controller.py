"""The Job controller end to end over a recording fake client, with pods that finish."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podns.controllers.job.controller import JobController
from podns.kube.events import EventRecorder
from podns.kube.resources import EVENTS, JOBS, PODS
from podns.kube.testing import FakeClient

from ._harness import eventually, running, settle
from .test_job_control import job

pytestmark = pytest.mark.timeout(30)


def jobs(client: Any, informers: Any) -> JobController:
    return JobController(client, informers, recorder=EventRecorder(client, "job-controller"))


async def finish_pods(fake: FakeClient, phase: str = "Succeeded") -> None:
    """Play the node agent: every new pod runs and ends in `phase`."""
    while True:
        for p in fake.objects(PODS):
            if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            p["status"] = {"phase": phase}
            try:
                await fake.update_status(PODS, p)
            except Exception:
                pass
        await asyncio.sleep(0.01)


def _job(**kw: Any) -> dict[str, Any]:
    obj = job(**kw)
    obj["metadata"].pop("uid")
    obj.pop("status")
    return obj


def conditions(fake: FakeClient) -> list[str]:
    st = fake.objects(JOBS, "default")[0].get("status") or {}
    return [c["type"] for c in st.get("conditions") or [] if c["status"] == "True"]


async def test_job_runs_completions_in_parallel_and_completes() -> None:
    """Given completions 4, parallelism 2, then exactly 4 pods are created, at most 2 at a time,
    and the Job ends Complete with `succeeded: 4` and a Completed event."""
    fake = FakeClient()
    fake.seed(JOBS, _job(completions=4, parallelism=2))
    async with running(fake, jobs):
        kl = asyncio.create_task(finish_pods(fake))
        try:
            await eventually(lambda: "Complete" in conditions(fake), timeout=15)
        finally:
            kl.cancel()
        await settle(fake)
    st = fake.objects(JOBS, "default")[0]["status"]
    assert st["succeeded"] == 4 and "active" not in st and st["completionTime"]
    creates = [a for a in fake.writes() if a.verb == "create" and a.resource == "pods"]
    assert len(creates) == 4
    assert "Completed" in {e["reason"] for e in fake.objects(EVENTS, "default")}


async def test_ttl_deletes_finished_job() -> None:
    """Given ttlSecondsAfterFinished 0, then the Job is deleted once Complete."""
    fake = FakeClient()
    fake.seed(JOBS, _job(ttl=0))
    async with running(fake, jobs):
        kl = asyncio.create_task(finish_pods(fake))
        try:
            await eventually(lambda: not fake.objects(JOBS, "default"), timeout=10)
        finally:
            kl.cancel()
    deletes = [a for a in fake.writes() if a.verb == "delete" and a.resource == "jobs"]
    assert len(deletes) == 1
