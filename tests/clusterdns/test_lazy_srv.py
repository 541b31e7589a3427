# ruff: noqa: E501  (strategy tables read best on one line)
"""SRV answers built when first asked (RecordIndex.lazy_entry): the same bytes as a precomputed
answer, gone from the table when their Service changes, never stale, even when the serving
thread builds one while the event loop applies a change."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podns.clusterdns import testing as t
from podns.clusterdns import wire
from podns.clusterdns.answers import build_entry
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics
from tests.clusterdns.conftest import ask_with, records
from tests.clusterdns.test_index_property import SERVICES, replay, service_obj, slice_obj

pytestmark = pytest.mark.timeout(120)

SRV_NAMES = [wire.name_to_wire(f"{p}{s}.default.svc.cluster.local") for s in SERVICES for p in ("", "_http._tcp.")]


def srv_key(name: bytes) -> bytes:
    return name + b"\x00\x21\x00\x01"


def test_srv_is_built_on_first_ask_then_served_from_the_table() -> None:
    """given a headless Service, its SRV answers are absent from the table until asked; asked,
    the answer is the eager encoding of the Service's SRV RRset and stays in the table."""
    idx = RecordIndex(metrics=Metrics(), clock=lambda: 1000.0)
    idx.on_service_add(t.service("db", ports=[("pg", "TCP", 5432)]))
    idx.on_slice_add(t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)],
                                      endpoints=[t.endpoint("10.0.0.1", hostname="db-0"), t.endpoint("10.0.0.2")]))
    idx.mark_synced()
    name = wire.name_to_wire("_pg._tcp.db.default.svc.cluster.local")
    assert srv_key(name) not in idx.answers and name in idx.names
    records_before = idx.record_count
    h = Handler(idx, Metrics(), upstream=False)
    got = records(ask_with(h, "_pg._tcp.db.default.svc.cluster.local.", "SRV"))
    assert got == ["_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5432 10-0-0-2.db.default.svc.cluster.local.",
                   "_pg._tcp.db.default.svc.cluster.local. 5 SRV 0 50 5432 db-0.db.default.svc.cluster.local."]
    rrset = idx._records(("default", "db")).rrsets[(name, wire.SRV)]
    assert idx.answers[srv_key(name)] == build_entry(name, wire.SRV, rrset, idx.metrics)
    assert idx.record_count == records_before + 2
    # a name that is not an SRV owner, and names that do not exist: nothing is built
    assert idx.lazy_entry(wire.name_to_wire("db-0.db.default.svc.cluster.local"), wire.SRV) is None
    assert idx.lazy_entry(wire.name_to_wire("_x._tcp.db.default.svc.cluster.local"), wire.SRV) is None
    assert idx.lazy_entry(name, wire.A) is None


def test_a_change_drops_the_built_answer_and_the_next_ask_sees_it() -> None:
    """given an SRV answer built on ask, an endpoint change removes it from the table; asked
    again it carries the new endpoint; the Service deleted, nothing of it is left."""
    idx = RecordIndex(metrics=Metrics(), clock=lambda: 1000.0)
    idx.mark_synced()
    baseline = (dict(idx.answers), dict(idx.names), idx.record_count)
    h = Handler(idx, Metrics(), upstream=False)
    idx.on_service_add(t.service("db", ports=[("pg", "TCP", 5432)]))
    idx.on_slice_add(t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)], endpoints=[t.endpoint("10.0.0.1", hostname="db-0")]))
    q = "_pg._tcp.db.default.svc.cluster.local."
    assert records(ask_with(h, q, "SRV")) == [f"{q} 5 SRV 0 100 5432 db-0.db.default.svc.cluster.local."]
    idx.on_slice_update(None, t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)], endpoints=[t.endpoint("10.0.0.1", hostname="db-1")]))
    assert srv_key(wire.name_to_wire(q)) not in idx.answers
    assert records(ask_with(h, q, "SRV")) == [f"{q} 5 SRV 0 100 5432 db-1.db.default.svc.cluster.local."]
    idx.on_service_delete(t.service("db", ports=[("pg", "TCP", 5432)]))
    idx.on_slice_delete(t.endpoint_slice("db-1", "db"))
    assert (idx.answers, idx.names, idx.record_count) == baseline


asks = st.tuples(st.just("ask_srv"), st.sampled_from(SRV_NAMES))
events = st.lists(st.one_of(
    st.tuples(st.just("service_add"), service_obj()),
    st.tuples(st.just("service_delete"), service_obj()),
    st.tuples(st.just("slice_add"), slice_obj()),
    st.tuples(st.just("slice_delete"), slice_obj()),
    asks, asks,
), max_size=25)


def _split(idx: RecordIndex) -> tuple[dict[bytes, Any], dict[bytes, Any]]:
    srv = {k: v for k, v in idx.answers.items() if k.endswith(b"\x00\x21\x00\x01")}
    return {k: v for k, v in idx.answers.items() if k not in srv}, srv


@settings(max_examples=300, deadline=None)
@given(events)
def test_built_srv_answers_are_never_stale(evs: list[tuple[str, Any]]) -> None:
    """given any sequence of changes with SRV questions in between, every SRV answer left in
    the table is the one a fresh index builds for the surviving objects, and everything else
    equals the fresh index."""
    live = RecordIndex(clock=lambda: 1.0)
    live.mark_synced()
    fresh = replay(live, evs)
    live_rest, live_srv = _split(live)
    assert live_rest == fresh.answers
    assert (live.names, live.pending, live.ptr_cands) == (fresh.names, fresh.pending, fresh.ptr_cands)
    for key, entry in live_srv.items():
        assert fresh.lazy_entry(key[:-4], wire.SRV) == entry
    assert live.record_count == fresh.record_count


def test_builds_racing_updates_end_on_the_last_state() -> None:
    """given the serving thread asking SRV questions without pause while the event loop's
    thread moves a Service's endpoints 300 times, the answer after the last change is the last
    state's (a build from before a change never lands after it)."""
    idx = RecordIndex(metrics=Metrics(), clock=lambda: 1000.0)
    idx.on_service_add(t.service("db", ports=[("pg", "TCP", 5432)]))
    idx.mark_synced()
    name = wire.name_to_wire("_pg._tcp.db.default.svc.cluster.local")
    stop = threading.Event()
    errors: list[BaseException] = []

    def asker() -> None:
        try:
            while not stop.is_set():
                idx.lazy_entry(name, wire.SRV)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=asker, daemon=True)
    thread.start()
    try:
        for i in range(300):
            idx.on_slice_update(None, t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)],
                                                       endpoints=[t.endpoint(f"10.0.{i // 250}.{i % 250 + 1}", hostname=f"db-{i}")]))
    finally:
        stop.set()
        thread.join(30)
    assert not errors
    entry = idx.answers.get(srv_key(name)) or idx.lazy_entry(name, wire.SRV)
    assert entry is not None and b"\x06db-299" in entry.reply


def test_serial_moves_when_an_unbuilt_srv_changes_only() -> None:
    """given a headless Service whose SRV answers were never asked, the SOA serial stays on an
    update that changes nothing and moves when only the SRV records change (a port)."""
    now = [1000.0]
    idx = RecordIndex(clock=lambda: now[0])
    idx.mark_synced()
    idx.on_service_add(t.service("db", ports=[("pg", "TCP", 5432)]))
    idx.on_slice_add(t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)], endpoints=[t.endpoint("10.0.0.1")]))
    now[0] = 2000.0
    idx.on_slice_update(None, t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5432)], endpoints=[t.endpoint("10.0.0.1")]))
    assert idx.serial == 1000
    idx.on_slice_update(None, t.endpoint_slice("db-1", "db", ports=[("pg", "TCP", 5433)], endpoints=[t.endpoint("10.0.0.1")]))
    assert idx.serial == 2000
