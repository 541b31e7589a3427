# ruff: noqa: E501  (strategy tables read best on one line)
"""Property: whatever the order of events, the incremental index equals a fresh build."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podns.clusterdns import testing as t
from podns.clusterdns import wire
from podns.clusterdns.index import RecordIndex

pytestmark = pytest.mark.timeout(60)

SERVICES = ["a", "b", "c"]
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::1"]


@st.composite
def service_obj(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(SERVICES))
    kind = draw(st.sampled_from(["headless", "clusterip", "external"]))
    if kind == "external":
        return t.service(name, external_name=draw(st.sampled_from(["x.example.test", "a.default.svc.cluster.local"])))
    ports = draw(st.lists(st.sampled_from([("http", "TCP", 80), ("dns", "UDP", 53), ("", "TCP", 8080)]),
                          max_size=2, unique=True))
    if kind == "clusterip":
        return t.service(name, cluster_ip=draw(st.sampled_from(["10.96.0.1", "10.96.0.2", "10.0.0.1"])), ports=ports)
    return t.service(name, ports=ports)


@st.composite
def slice_obj(draw: st.DrawFn) -> dict[str, Any]:
    endpoints = [t.endpoint(ip, ready=draw(st.sampled_from([True, False, None])),
                            hostname=draw(st.sampled_from([None, "db-0", "db-1"])))
                 for ip in draw(st.lists(st.sampled_from(IPS), max_size=3, unique=True))]
    ports = draw(st.sampled_from([None, [("http", "TCP", 80)], [("http", "TCP", 80), ("", "TCP", 9)]]))
    return t.endpoint_slice(draw(st.sampled_from(["s1", "s2", "s3"])), draw(st.sampled_from(SERVICES)),
                            endpoints=endpoints, ports=ports)


events = st.lists(st.one_of(
    st.tuples(st.just("service_add"), service_obj()),
    st.tuples(st.just("service_delete"), service_obj()),
    st.tuples(st.just("slice_add"), slice_obj()),
    st.tuples(st.just("slice_delete"), slice_obj()),
    st.tuples(st.just("statefulset_add"), st.builds(lambda n, r: t.statefulset("db", service_name=n, replicas=r),
                                                    st.sampled_from(SERVICES), st.integers(0, 3))),
    st.tuples(st.just("pod_add"), st.builds(lambda ip, h: t.pod("p", ip=ip, hostname=h, subdomain="a"),
                                            st.sampled_from(IPS), st.sampled_from(["", "db-2"]))),
), max_size=25)


def replay(live: RecordIndex, evs: list[tuple[str, Any]]) -> RecordIndex:
    """Apply `evs` to `live` ("ask_srv": an SRV question's lazy build); returns an index built
    from scratch from the objects that survive them."""
    survivors: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
    for verb, obj in evs:
        if verb == "ask_srv":
            live.lazy_entry(obj, wire.SRV)
            continue
        kind, action = verb.rsplit("_", 1)
        getattr(live, f"on_{kind}_{action}")(obj)
        key = (kind, obj["metadata"]["name"])
        if action == "delete":
            survivors.pop(key, None)
        else:
            survivors[key] = (kind, obj)
    fresh = RecordIndex(clock=lambda: 1.0)
    for kind, obj in survivors.values():
        getattr(fresh, f"on_{kind}_add")(obj)
    fresh.mark_synced()
    return fresh


def state(idx: RecordIndex) -> tuple[Any, ...]:
    return (idx.answers, idx.names, idx.pending, idx.externals, idx.ptr_cands, idx.record_count)


@settings(max_examples=300, deadline=None)
@given(events, st.booleans())
def test_incremental_equals_fresh_build(evs: list[tuple[str, dict[str, Any]]], synced_first: bool) -> None:
    """Given any sequence of adds/updates/deletes (synced before or after them), the index
    equals one built from scratch from the surviving objects."""
    live = RecordIndex(clock=lambda: 1.0)
    if synced_first:
        live.mark_synced()
    fresh = replay(live, evs)
    live.mark_synced()
    assert state(live) == state(fresh)
