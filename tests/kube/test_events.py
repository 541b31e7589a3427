"""EventRecorder: Events written, aggregated by (object, reason, message) and coalesced."""

from __future__ import annotations

import pytest

from podns.kube import errors, events
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import EVENTS
from podns.kube.testing import FakeClient

pytestmark = pytest.mark.timeout(10)

STS = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "db", "namespace": "default", "uid": "u1", "resourceVersion": "7"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0", "namespace": "default", "uid": "p1"}}


class Clock:
    """A settable wall clock (seconds since the epoch)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def by_reason(fake: FakeClient) -> dict[str, dict]:
    return {e["reason"]: e for e in fake.objects(EVENTS, "default")}


async def test_repeats_aggregate_into_one_event() -> None:
    """Given the same event recorded three times, then one Event with count 3 exists; another
    reason makes a second Event, with the involved object and source as client-go writes them."""
    fake = FakeClient()
    rec = EventRecorder(fake, "statefulset-controller")  # type: ignore[arg-type]
    for _ in range(3):
        rec.event(STS, WARNING, "FailedCreate", "create Pod db-0 in StatefulSet db failed")
    rec.event(STS, WARNING, "InvalidSelector", "bad")
    await rec.flush()
    await rec.stop()
    got = by_reason(fake)
    assert got["FailedCreate"]["count"] == 3 and got["InvalidSelector"]["count"] == 1
    ev = got["FailedCreate"]
    assert ev["involvedObject"] == {"kind": "StatefulSet", "apiVersion": "apps/v1", "name": "db",
                                    "namespace": "default", "uid": "u1", "resourceVersion": "7"}
    assert ev["source"] == {"component": "statefulset-controller"} and ev["type"] == "Warning"
    assert ev["reportingComponent"] == ev["reportingInstance"] == "statefulset-controller"
    assert ev["metadata"]["name"].startswith("db.")
    assert ev["firstTimestamp"] == ev["lastTimestamp"]


async def test_repeat_after_a_write_patches_count_and_last_timestamp() -> None:
    """Given an Event written, when it repeats after MIN_REWRITE, then the recorder PATCHes count
    and lastTimestamp of the same Event instead of creating another."""
    fake, clock = FakeClient(), Clock()
    rec = EventRecorder(fake, "kubelet", host="n1", clock=clock)  # type: ignore[arg-type]
    rec.event(POD, WARNING, "Unhealthy", "Readiness probe failed", field_path="spec.containers{app}")
    await rec.flush()
    clock.now += events.MIN_REWRITE + 5
    rec.event(POD, WARNING, "Unhealthy", "Readiness probe failed", field_path="spec.containers{app}")
    await rec.flush()
    await rec.stop()
    (ev,) = fake.objects(EVENTS, "default")
    assert ev["count"] == 2 and ev["lastTimestamp"] > ev["firstTimestamp"]
    assert ev["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert ev["source"] == {"component": "kubelet", "host": "n1"} and ev["reportingInstance"] == "n1"
    assert [a.verb for a in fake.writes()] == ["create", "patch"]


async def test_repeats_within_min_rewrite_are_coalesced() -> None:
    """Given an Event repeated every second, then the API sees no more than one write per
    MIN_REWRITE, and flush delivers the final count."""
    fake, clock = FakeClient(), Clock()
    rec = EventRecorder(fake, "kubelet", clock=clock)  # type: ignore[arg-type]
    rec.event(POD, WARNING, "BackOff", "Back-off restarting failed container")
    await rec.flush()
    for _ in range(5):
        clock.now += 1
        rec.event(POD, WARNING, "BackOff", "Back-off restarting failed container")
    assert len(fake.writes()) == 1, "repeats inside MIN_REWRITE wait for their timer"
    await rec.flush()
    await rec.stop()
    (ev,) = fake.objects(EVENTS, "default")
    assert ev["count"] == 6 and [a.verb for a in fake.writes()] == ["create", "patch"]


async def test_dedup_window_and_other_fields_make_new_events() -> None:
    """Given a repeat after DEDUP_WINDOW, another type or another object, then each is a new
    Event (count 1)."""
    fake, clock = FakeClient(), Clock()
    rec = EventRecorder(fake, "kubelet", clock=clock)  # type: ignore[arg-type]
    rec.event(POD, NORMAL, "Pulled", "image present")
    await rec.flush()
    clock.now += events.DEDUP_WINDOW + 1
    rec.event(POD, NORMAL, "Pulled", "image present")
    rec.event(POD, WARNING, "Pulled", "image present")
    rec.event({**POD, "metadata": {**POD["metadata"], "name": "db-1", "uid": "p2"}}, NORMAL, "Pulled",
              "image present")
    await rec.flush()
    await rec.stop()
    evs = fake.objects(EVENTS, "default")
    assert len(evs) == 4 and all(e["count"] == 1 for e in evs)


async def test_deleted_event_is_created_again() -> None:
    """Given an aggregated Event deleted meanwhile (event TTL), when it repeats, then a new Event
    carries the count."""
    fake, clock = FakeClient(), Clock()
    rec = EventRecorder(fake, "kubelet", clock=clock)  # type: ignore[arg-type]
    rec.event(POD, WARNING, "Failed", "boom")
    await rec.flush()
    (ev,) = fake.objects(EVENTS, "default")
    await fake.delete(EVENTS, ev["metadata"]["name"], "default")
    clock.now += events.MIN_REWRITE
    rec.event(POD, WARNING, "Failed", "boom")
    await rec.flush()
    await rec.stop()
    (again,) = fake.objects(EVENTS, "default")
    assert again["count"] == 2 and again["metadata"]["name"] != ev["metadata"]["name"]


async def test_failed_write_is_dropped_not_raised() -> None:
    """Given an API that refuses Events, then recording neither raises nor blocks, and the
    recorder keeps writing later events."""
    fake = FakeClient()
    calls = []

    def refuse(action: object) -> object:
        calls.append(action)
        if len(calls) == 1:
            raise errors.ServerError({"kind": "Status", "code": 500, "message": "boom"})
        return None

    fake.prepend_reactor("create", "events", refuse)  # type: ignore[arg-type]
    rec = EventRecorder(fake, "scheduler")  # type: ignore[arg-type]
    rec.event(POD, WARNING, "FailedScheduling", "no nodes")
    await rec.flush()
    rec.event(POD, NORMAL, "Scheduled", "assigned")
    await rec.flush()
    await rec.stop()
    assert len(calls) == 2 and [e["reason"] for e in fake.objects(EVENTS, "default")] == ["Scheduled"]


def test_no_event_loop_is_a_no_op() -> None:
    """Given no running event loop, then event() returns without writing or raising."""
    rec = EventRecorder(FakeClient(), "scheduler")  # type: ignore[arg-type]
    rec.event(POD, NORMAL, "Scheduled", "assigned")
    assert rec.written == 0
