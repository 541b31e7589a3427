"""The EndpointSlice reconciler as a specification: Service + pods + existing slices -> writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podns.controllers.endpointslice.reconciler import (
    MANAGED_BY,
    Plan,
    reconcile,
)
from podns.objects.wellknown import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, TRIGGER_TIME_ANNOTATION

from ._builders import node, pod, service

Obj = dict[str, Any]


def applied(plan: Plan, existing: list[Obj]) -> list[Obj]:
    """The slices after applying `plan` to `existing` (names given to created slices)."""
    deleted = {s["metadata"]["name"] for s in plan.delete}
    updated = {s["metadata"]["name"]: s for s in plan.update}
    out = [updated.get(s["metadata"]["name"], s) for s in existing if s["metadata"]["name"] not in deleted]
    for i, s in enumerate(plan.create):
        s = copy.deepcopy(s)
        s["metadata"]["name"] = f"{s['metadata']['generateName']}gen{i}-{len(existing)}"
        out.append(s)
    return out


def endpoints_of(slices: list[Obj]) -> dict[str, Obj]:
    return {ep["targetRef"]["name"]: ep for s in slices for ep in s["endpoints"]}


def test_new_service_creates_one_slice_with_all_fields() -> None:
    """Given a headless Service and two pods (one ready), when reconciled with no slices, then one
    slice is created with ready/serving/terminating, hostname, nodeName, zone, targetRef, ports,
    labels, owner and trigger annotation."""
    svc = service(labels={"team": "a"})
    pods = [
        pod("db-0", ip="10.0.0.1", node="n1", hostname="db-0", subdomain="db"),
        pod("db-1", ip="10.0.0.2", ready=False, node="n2", hostname="db-1", subdomain="other"),
    ]
    plan = reconcile(svc, pods, [], nodes={"n1": node("n1", zone="z1"), "n2": node("n2")})
    assert not plan.update and not plan.delete and len(plan.create) == 1
    sl = plan.create[0]
    assert sl["metadata"]["generateName"] == "db-"
    assert sl["addressType"] == "IPv4"
    assert sl["ports"] == [{"name": "tcp", "port": 8080, "protocol": "TCP"}]
    assert sl["metadata"]["labels"] == {
        "team": "a",
        SERVICE_NAME_LABEL: "db",
        MANAGED_BY_LABEL: MANAGED_BY,
        "service.kubernetes.io/headless": "",
    }
    owner = sl["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Service",
        "db",
        "uid-svc-db",
        True,
    )
    assert sl["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] == "2026-01-01T00:00:01Z"
    eps = endpoints_of([sl])
    assert eps["db-0"] == {
        "addresses": ["10.0.0.1"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "hostname": "db-0",
        "nodeName": "n1",
        "zone": "z1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0", "uid": "uid-db-0"},
    }
    assert eps["db-1"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
    assert "hostname" not in eps["db-1"] and "zone" not in eps["db-1"]


@pytest.mark.parametrize(
    ("ready", "terminating", "publish", "want"),
    [
        (True, False, False, (True, True, False)),
        (False, False, False, (False, False, False)),
        (True, True, False, (False, True, True)),
        (False, True, False, (False, False, True)),
        (False, False, True, (True, False, False)),
        (True, True, True, (True, True, True)),
    ],
    ids=[
        "ready",
        "not-ready",
        "terminating-ready",
        "terminating-not-ready",
        "publish-not-ready",
        "publish-terminating",
    ],
)
def test_conditions(ready: bool, terminating: bool, publish: bool, want: tuple[bool, bool, bool]) -> None:
    """Given a pod's readiness and deletion, then conditions follow Kubernetes' rules."""
    plan = reconcile(
        service(publish_not_ready=publish), [pod("db-0", ready=ready, terminating=terminating)], []
    )
    c = plan.create[0]["endpoints"][0]["conditions"]
    assert (c["ready"], c["serving"], c["terminating"]) == want


def test_pods_without_ip_or_finished_are_skipped_and_placeholder_kept() -> None:
    """Given pods without IPs or Succeeded/Failed, then no endpoints: one empty placeholder slice."""
    pods = [pod("a", ip=None), pod("b", phase="Succeeded"), pod("c", phase="Failed")]
    plan = reconcile(service(), pods, [])
    assert len(plan.create) == 1
    assert plan.create[0]["endpoints"] == [] and plan.create[0]["ports"] == []


def test_unchanged_slices_are_not_rewritten() -> None:
    """Given slices that already match, when reconciled again, then the plan is empty."""
    svc = service()
    pods = [pod(f"db-{i}", ip=f"10.0.0.{i + 1}") for i in range(5)]
    slices = applied(reconcile(svc, pods, []), [])
    assert not reconcile(svc, pods, slices)
    empty = applied(reconcile(svc, [], []), [])
    assert not reconcile(svc, [], empty)


def test_readiness_flip_updates_only_that_slice() -> None:
    """Given 250 pods over 3 slices, when one pod turns unready, then exactly one update."""
    svc = service()
    pods = [pod(f"p{i:03}", ip=f"10.0.{i // 200}.{i % 200 + 1}") for i in range(250)]
    slices = applied(reconcile(svc, pods, []), [])
    assert len(slices) == 3 and all(len(s["endpoints"]) <= 100 for s in slices)
    pods[42] = pod("p042", ip=pods[42]["status"]["podIP"], ready=False, ready_since="2026-01-01T00:01:00Z")
    plan = reconcile(svc, pods, slices)
    assert (len(plan.create), len(plan.update), len(plan.delete)) == (0, 1, 0)
    assert endpoints_of(plan.update)["p042"]["conditions"]["ready"] is False
    assert plan.update[0]["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION] == "2026-01-01T00:01:00Z"


def test_max_endpoints_per_slice_is_configurable() -> None:
    """Given max 2 per slice and 5 pods, then 3 slices."""
    pods = [pod(f"p{i}", ip=f"10.0.0.{i + 1}") for i in range(5)]
    plan = reconcile(service(), pods, [], max_endpoints_per_slice=2)
    assert [len(s["endpoints"]) for s in plan.create] == [2, 2, 1]


def test_new_pod_fills_existing_slice_and_removed_pod_leaves() -> None:
    """Given one slice, when a pod is added and another removed, then one update, no create."""
    svc = service()
    pods = [pod("a", ip="10.0.0.1"), pod("b", ip="10.0.0.2")]
    slices = applied(reconcile(svc, pods, []), [])
    plan = reconcile(svc, [pods[0], pod("c", ip="10.0.0.3")], slices)
    assert (len(plan.create), len(plan.update), len(plan.delete)) == (0, 1, 0)
    assert sorted(endpoints_of(plan.update)) == ["a", "c"]


def test_all_pods_gone_turns_slice_into_placeholder() -> None:
    """Given a slice with endpoints, when all pods go, then it is updated to an empty placeholder
    (not deleted), and extra slices are deleted."""
    svc = service()
    pods = [pod(f"p{i}", ip=f"10.0.0.{i + 1}") for i in range(3)]
    slices = applied(reconcile(svc, pods, [], max_endpoints_per_slice=2), [])
    assert len(slices) == 2
    plan = reconcile(svc, [], slices)
    assert len(plan.update) == 1 and len(plan.delete) == 1 and not plan.create
    assert plan.update[0]["endpoints"] == [] and plan.update[0]["ports"] == []


def test_named_target_port_resolves_per_pod() -> None:
    """Given a named targetPort and pods exposing it on different numbers, then one slice per port
    mapping; a pod without the port gets a slice with no ports."""
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [
        pod("a", ip="10.0.0.1", container_ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", ip="10.0.0.2", container_ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", ip="10.0.0.3", container_ports=[{"name": "web", "containerPort": 8080}]),
        pod("d", ip="10.0.0.4"),
    ]
    plan = reconcile(svc, pods, [])
    by_port = {
        tuple(p["port"] for p in s["ports"]): sorted(e["targetRef"]["name"] for e in s["endpoints"])
        for s in plan.create
    }
    assert by_port == {(8080,): ["a", "c"], (9090,): ["b"], (): ["d"]}


def test_service_label_change_updates_labels() -> None:
    """Given current slices, when the Service's labels change, then the slices are updated."""
    pods = [pod("a")]
    slices = applied(reconcile(service(), pods, []), [])
    plan = reconcile(service(labels={"tier": "x"}), pods, slices)
    assert len(plan.update) == 1 and plan.update[0]["metadata"]["labels"]["tier"] == "x"


def test_duplicate_endpoints_across_slices_are_removed() -> None:
    """Given two slices both holding the same pod (a past race), then one keeps it and the other
    (left empty) is deleted."""
    svc = service()
    slices = applied(reconcile(svc, [pod("a")], []), [])
    dup = copy.deepcopy(slices[0])
    dup["metadata"]["name"] = "db-zzz"
    plan = reconcile(svc, [pod("a")], [*slices, dup])
    assert [s["metadata"]["name"] for s in plan.delete] == ["db-zzz"] and not plan.create


def test_inputs_are_not_mutated() -> None:
    """Given cached objects, when reconciled, then none of them changes (shared informer cache)."""
    svc = service()
    pods = [pod("a"), pod("b", ip="10.0.0.2", ready=False)]
    slices = applied(reconcile(svc, pods[:1], []), [])
    snapshot = copy.deepcopy((svc, pods, slices))
    plan = reconcile(svc, pods, slices)
    assert plan.update
    assert (svc, pods, slices) == snapshot


def test_lowered_limit_moves_overflow() -> None:
    """Given a slice of 5 endpoints, when the limit drops to 2, then no slice exceeds 2."""
    svc = service()
    pods = [pod(f"p{i}", ip=f"10.0.0.{i + 1}") for i in range(5)]
    slices = applied(reconcile(svc, pods, []), [])
    after = applied(reconcile(svc, pods, slices, max_endpoints_per_slice=2), slices)
    assert all(len(s["endpoints"]) <= 2 for s in after)
    assert sorted(endpoints_of(after)) == [f"p{i}" for i in range(5)]


def test_placeholder_is_reused_for_first_endpoints() -> None:
    """Given only a placeholder slice, when the first pod appears, then the placeholder is
    updated with it (no delete + create)."""
    svc = service()
    slices = applied(reconcile(svc, [], []), [])
    plan = reconcile(svc, [pod("a")], slices)
    assert (len(plan.create), len(plan.update), len(plan.delete)) == (0, 1, 0)
    assert plan.update[0]["metadata"]["name"] == slices[0]["metadata"]["name"]
    assert plan.update[0]["ports"] and plan.update[0]["endpoints"]


@pytest.mark.parametrize(("families", "want"), [
    (["IPv4"], {"IPv4": ["10.0.0.1", "10.0.0.2"]}),
    (["IPv6"], {"IPv6": ["fd00::1", "fd00::2"]}),
    (["IPv4", "IPv6"], {"IPv4": ["10.0.0.1", "10.0.0.2"], "IPv6": ["fd00::1", "fd00::2"]}),
], ids=["ipv4", "ipv6", "dual-stack"])
def test_one_slice_per_family(families: list[str], want: dict[str, list[str]]) -> None:
    """Given dual-stack pods and a Service's ipFamilies, then one slice per family, each with the
    pods' addresses of that family (addressType IPv4 / IPv6) and the same hostnames."""
    pods = []
    for i in (1, 2):
        p = pod(f"db-{i}", ip=f"10.0.0.{i}", hostname=f"db-{i}", subdomain="db")
        p["status"]["podIPs"] = [{"ip": f"10.0.0.{i}"}, {"ip": f"fd00::{i}"}]
        pods.append(p)
    svc = service()
    svc["spec"]["ipFamilies"] = families
    slices = applied(reconcile(svc, pods, []), [])
    got = {s["addressType"]: sorted(a for e in s["endpoints"] for a in e["addresses"]) for s in slices}
    assert got == want
    assert all(sorted(e["hostname"] for e in s["endpoints"]) == ["db-1", "db-2"] for s in slices)
