"""LeaderElector on the FakeClient: one leader, takeover on expiry, release, step-down."""

from __future__ import annotations

import asyncio
import time

import pytest

from podns.kube import errors
from podns.kube.leaderelection import LeaderElector
from podns.kube.resources import LEASES
from podns.kube.testing import Action, FakeClient

pytestmark = pytest.mark.timeout(15)

FAST = {"lease_duration": 1.0, "renew_deadline": 0.6, "retry_period": 0.15}


def elector(fc: FakeClient, ident: str, log: list[str], **kw: object) -> LeaderElector:
    return LeaderElector(
        fc, "kube-system", "ctrl", ident,
        on_started_leading=lambda: log.append(f"start {ident}"),
        on_stopped_leading=lambda: log.append(f"stop {ident}"),
        **{**FAST, **kw},  # type: ignore[arg-type]
    )


async def wait_for(cond: object, timeout: float) -> float:
    t0 = time.monotonic()
    async with asyncio.timeout(timeout):
        while not cond():  # type: ignore[operator]  # noqa: ASYNC110 - polling electors
            await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_exactly_one_leads_and_release_hands_over() -> None:
    """Two electors: one leads (the Lease names it); cancelling it releases the Lease and the
    other takes over well within the lease duration."""
    fc = FakeClient()
    log: list[str] = []
    a, b = elector(fc, "a", log), elector(fc, "b", log)
    ta = asyncio.create_task(a.run())
    await wait_for(lambda: a.is_leader, 2)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(0.5)
    assert a.is_leader and not b.is_leader and b.leader == "a"
    lease = await fc.get(LEASES, "ctrl", "kube-system")
    assert lease["spec"]["holderIdentity"] == "a" and lease["spec"]["leaseTransitions"] == 0
    assert lease["spec"]["renewTime"].endswith("Z") and "." in lease["spec"]["renewTime"]
    ta.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ta
    took = await wait_for(lambda: b.is_leader, 2)
    assert took < FAST["lease_duration"]
    lease = await fc.get(LEASES, "ctrl", "kube-system")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    assert log == ["start a", "stop a", "start b"]
    tb.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tb


async def test_leader_that_cannot_renew_steps_down_and_other_takes_over() -> None:
    """When the leader's renewals fail, it stops leading within renew_deadline and the other
    elector takes the Lease after it expires (within lease duration + retry)."""
    fc = FakeClient()
    log: list[str] = []
    a, b = elector(fc, "a", log), elector(fc, "b", log)
    ta = asyncio.create_task(a.run())
    await wait_for(lambda: a.is_leader, 2)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(0.3)

    def partition_a(action: Action) -> None:
        if (action.body or {}).get("spec", {}).get("holderIdentity") == "a":
            raise errors.TransportError("a is partitioned")
        return None

    fc.prepend_reactor("update", "leases", partition_a)
    t0 = time.monotonic()
    await wait_for(lambda: "stop a" in log, 2)
    assert time.monotonic() - t0 < FAST["renew_deadline"] + 2 * FAST["retry_period"] + 0.3
    await wait_for(lambda: b.is_leader, 3)
    assert time.monotonic() - t0 < FAST["lease_duration"] + 3 * FAST["retry_period"] + 0.5
    assert not a.is_leader and log[:3] == ["start a", "stop a", "start b"]
    for t in (ta, tb):
        t.cancel()
    await asyncio.gather(ta, tb, return_exceptions=True)


async def test_async_work_is_cancelled_on_loss() -> None:
    """An async on_started_leading runs while leading and is cancelled when leadership ends."""
    fc = FakeClient()
    state: list[str] = []

    async def work() -> None:
        state.append("working")
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            state.append("cancelled")
            raise

    el = LeaderElector(fc, "ns", "l", "me", on_started_leading=work, **FAST)  # type: ignore[arg-type]
    task = asyncio.create_task(el.run())
    await wait_for(lambda: state == ["working"], 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert state == ["working", "cancelled"]
    assert (await fc.get(LEASES, "l", "ns"))["spec"]["holderIdentity"] == ""


def test_rejects_bad_durations() -> None:
    with pytest.raises(ValueError, match="lease_duration"):
        LeaderElector(FakeClient(), "ns", "l", "me", lease_duration=5, renew_deadline=10)
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(FakeClient(), "ns", "l", "")
