"""Scheduler, node lifecycle, garbage collector and leader election over the recording fake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podns.controllers.gc import FOREGROUND, ORPHAN, GarbageCollector
from podns.controllers.manager import ControllerManager, Options
from podns.controllers.nodelifecycle import NodeLifecycleController
from podns.controllers.scheduler import Scheduler, feasible_nodes, pick_node
from podns.kube.resources import CONFIGMAPS, LEASES, NODES, PODS, SERVICES
from podns.kube.testing import FakeClient

from ._builders import node, pod
from ._harness import eventually, running

pytestmark = pytest.mark.timeout(30)


def pending(
    name: str, *, owner_uid: str | None = None, selector: dict[str, str] | None = None
) -> dict[str, Any]:
    p = pod(name, ip=None, phase="Pending")
    p["metadata"].pop("uid")
    p.pop("status")
    if owner_uid:
        p["metadata"]["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "db",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    if selector:
        p["spec"]["nodeSelector"] = selector
    return p


def node_of(fake: FakeClient, name: str) -> str | None:
    return next(p["spec"].get("nodeName") for p in fake.objects(PODS) if p["metadata"]["name"] == name)


@pytest.mark.parametrize(
    ("nodes", "selector", "want"),
    [
        ([node("a"), node("b", ready=False)], None, "a"),
        ([node("a"), node("b")], {"disk": "ssd"}, None),
        ([node("a", zone="z"), node("b")], {"topology.kubernetes.io/zone": "z"}, "a"),
    ],
    ids=["skips-not-ready", "selector-matches-nothing", "selector"],
)
def test_pick_node(nodes: list[dict[str, Any]], selector: dict[str, str] | None, want: str | None) -> None:
    """Given nodes and a pod's nodeSelector, then the picked node is feasible (or none)."""
    assert pick_node(pending("p", selector=selector), nodes) == want


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    p = pending("p")
    p["spec"]["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
            }
        }
    }
    return p


@pytest.mark.parametrize(
    ("terms", "want"),
    [
        ([[{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z2"]}]], "b"),
        ([[{"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["z1", "z2"]}]], None),
        ([[{"key": "topology.kubernetes.io/zone", "operator": "DoesNotExist"}]], None),
        (
            [
                [{"key": "gpu", "operator": "Exists"}],
                [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["z1"]}],
            ],
            "a",
        ),
        ([[{"key": "cores", "operator": "Gt", "values": ["4"]}]], None),
        ([[{"key": "zone", "operator": "Bogus", "values": ["x"]}]], None),
    ],
    ids=["in", "notin", "doesnotexist", "terms-ored", "gt-missing-label", "unknown-operator"],
)
def test_required_node_affinity(terms: list[list[dict[str, Any]]], want: str | None) -> None:
    """Given required node affinity terms, then only nodes matching one term (all its
    expressions) are picked."""
    nodes = [node("a", zone="z1"), node("b", zone="z2")]
    assert pick_node(affinity(*terms), nodes) == want


@pytest.mark.parametrize(("status", "tolerations", "want"), [
    ("True", [], "b"),
    ("True", [{"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
               "effect": "NoSchedule"}], "a"),
    ("False", [], "a"),
], ids=["unavailable-skipped", "tolerated", "available"])
def test_network_unavailable_is_a_taint(status: str, tolerations: list[dict[str, Any]], want: str) -> None:
    """Given node a with NetworkUnavailable=<status> (fewer pods, so preferred) and node b: a pod
    lands on a unless a's network is unavailable and the pod does not tolerate that taint."""
    a = node("a")
    a["status"]["conditions"].append({"type": "NetworkUnavailable", "status": status})
    p = pending("p")
    p["spec"]["tolerations"] = tolerations
    assert pick_node(p, [a, node("b")]) == want


def test_unschedulable_message() -> None:
    """Given no feasible node, then the message counts the reasons like Kubernetes."""
    _, message = feasible_nodes(pending("p"), [node("a", ready=False), node("b", ready=False)])
    assert message == "0/2 nodes are available: 2 node(s) were not ready."


async def test_scheduler_spreads_statefulset_pods_and_waits_for_nodes() -> None:
    """Given two Ready nodes and four pods of one StatefulSet, then they are spread 2/2; a pod
    whose nodeSelector matches nothing stays pending until a matching node appears."""
    fake = FakeClient()
    fake.seed(NODES, node("n1"))
    fake.seed(NODES, node("n2"))
    for i in range(4):
        fake.seed(PODS, pending(f"db-{i}", owner_uid="sts-1"))
    fake.seed(PODS, pending("picky", selector={"disk": "ssd"}))
    async with running(fake, Scheduler):
        await eventually(lambda: all(node_of(fake, f"db-{i}") for i in range(4)))
        placed = [node_of(fake, f"db-{i}") for i in range(4)]
        assert sorted(placed) == ["n1", "n1", "n2", "n2"]
        await asyncio.sleep(0.1)
        assert node_of(fake, "picky") is None
        picky = next(p for p in fake.objects(PODS) if p["metadata"]["name"] == "picky")
        cond = picky["status"]["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == ("PodScheduled", "False", "Unschedulable")
        n3 = node("n3")
        n3["metadata"]["labels"]["disk"] = "ssd"
        await fake.create(NODES, n3)
        await eventually(lambda: node_of(fake, "picky") == "n3")


async def test_silent_node_becomes_unknown_and_its_pods_not_ready() -> None:
    """Given a node whose Lease stops being renewed, then after the grace period the node's Ready
    condition is Unknown and its pods' Ready is False; a node that keeps renewing stays Ready."""
    fake = FakeClient()
    for name in ("dead", "alive"):
        fake.seed(NODES, node(name))
        fake.seed(
            LEASES,
            {
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": name, "renewTime": "2026-01-01T00:00:00.000000Z"},
            },
        )
        p = pod(f"pod-{name}", node=name)
        p["metadata"].pop("uid")
        fake.seed(PODS, p)

    def make(client: Any, informers: Any) -> NodeLifecycleController:
        return NodeLifecycleController(client, informers, grace_period=0.4)

    async def renew() -> None:
        n = 0
        while True:
            n += 1
            lease = next(
                lo for lo in fake.objects(LEASES, "kube-node-lease") if lo["metadata"]["name"] == "alive"
            )
            lease["spec"]["renewTime"] = f"2026-01-01T00:00:{n % 60:02}.000000Z"
            await fake.update(LEASES, lease)
            await asyncio.sleep(0.1)

    def cond(obj: dict[str, Any]) -> str:
        return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")

    def get(res: Any, name: str) -> dict[str, Any]:
        return next(o for o in fake.objects(res) if o["metadata"]["name"] == name)

    async with running(fake, make):
        renewer = asyncio.create_task(renew())
        try:
            await eventually(lambda: cond(get(NODES, "dead")) == "Unknown", timeout=5)
            await eventually(lambda: cond(get(PODS, "pod-dead")) == "False")
            assert cond(get(NODES, "alive")) == "True" and cond(get(PODS, "pod-alive")) == "True"
            reason = next(c for c in get(NODES, "dead")["status"]["conditions"] if c["type"] == "Ready")[
                "reason"
            ]
            assert reason == "NodeStatusUnknown"
        finally:
            renewer.cancel()


def configmap(
    name: str, *owners: dict[str, Any], finalizers: list[str] | None = None, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if owners:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": o["kind"],
                "name": o["metadata"]["name"],
                "uid": o["metadata"]["uid"],
            }
            for o in owners
        ]
    if finalizers:
        meta["finalizers"] = finalizers
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {}}


async def test_gc_background_foreground_orphan() -> None:
    """Given owners and dependents: a dependent whose only owner is deleted is collected; one with
    another live owner only loses the dangling reference; an owner with the orphan finalizer
    releases its dependents then the finalizer; an owner with foregroundDeletion gets its
    dependents deleted, then the finalizer removed."""
    fake = FakeClient()
    owner = fake.seed(SERVICES, {"metadata": {"name": "owner", "namespace": "default"}, "spec": {}})
    other = fake.seed(SERVICES, {"metadata": {"name": "other", "namespace": "default"}, "spec": {}})
    fake.seed(CONFIGMAPS, configmap("only-child", owner))
    fake.seed(CONFIGMAPS, configmap("two-parents", owner, other))
    orphaner = fake.seed(CONFIGMAPS, configmap("orphaner", finalizers=[ORPHAN]))
    fake.seed(CONFIGMAPS, configmap("kept", orphaner))
    fg = fake.seed(CONFIGMAPS, configmap("fg", finalizers=[FOREGROUND]))
    fake.seed(CONFIGMAPS, configmap("fg-child", fg))

    def names() -> set[str]:
        return {o["metadata"]["name"] for o in fake.objects(CONFIGMAPS)}

    def cm(name: str) -> dict[str, Any]:
        return next(o for o in fake.objects(CONFIGMAPS) if o["metadata"]["name"] == name)

    async with running(fake, GarbageCollector):
        await asyncio.sleep(0.1)
        assert {"only-child", "two-parents", "kept", "fg-child"} <= names()  # live owners: nothing
        await fake.delete(SERVICES, "owner", "default")
        await eventually(lambda: "only-child" not in names())
        await eventually(
            lambda: [r["name"] for r in cm("two-parents")["metadata"]["ownerReferences"]] == ["other"]
        )
        # the API server sets deletionTimestamp when finalizers remain; the fake needs us to do it
        for name in ("orphaner", "fg"):
            obj = cm(name)
            obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
            await fake.update(CONFIGMAPS, obj)
        await eventually(lambda: not cm("kept")["metadata"].get("ownerReferences"))
        await eventually(lambda: not cm("orphaner")["metadata"].get("finalizers"))
        await eventually(lambda: "fg-child" not in names())
        await eventually(lambda: not cm("fg")["metadata"].get("finalizers"))


async def test_leader_election_only_one_manager_acts() -> None:
    """Given two managers with leader election on one API, then exactly one runs controllers;
    when it stops, the other takes over."""
    fake = FakeClient()
    opts = {
        "controllers": ["endpointslice"],
        "lease_duration": 1.0,
        "renew_deadline": 0.6,
        "retry_period": 0.1,
    }
    a = ControllerManager(fake, Options(identity="a", **opts))  # type: ignore[arg-type]
    b = ControllerManager(fake, Options(identity="b", **opts))  # type: ignore[arg-type]
    ta, tb = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    try:
        await eventually(lambda: a.leading.is_set() or b.leading.is_set())
        await asyncio.sleep(0.3)
        assert a.leading.is_set() != b.leading.is_set()
        leader, follower, task = (a, b, ta) if a.leading.is_set() else (b, a, tb)
        lease = fake.objects(LEASES, "kube-system")[0]
        assert lease["spec"]["holderIdentity"] == leader.options.identity
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await eventually(lambda: follower.leading.is_set(), timeout=5)
    finally:
        for t in (ta, tb):
            t.cancel()
        await asyncio.gather(ta, tb, return_exceptions=True)


async def test_volume_binder_binds_pending_claims() -> None:
    """Given a Pending claim, then it gets volumeName pvc-<uid> and status Bound with its access
    modes and requested capacity, and the PersistentVolume pvc-<uid> is written Bound for it; a
    bound claim is not written again; deleting the claim deletes its volume; a hand-written
    volume becomes Available."""
    from podns.controllers.volumebinder import PROVISIONER, VolumeBinder
    from podns.kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES

    fake = FakeClient()
    claim = fake.seed(
        PERSISTENTVOLUMECLAIMS,
        {
            "metadata": {"name": "data-db-0", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        },
    )

    def get() -> dict[str, Any]:
        return fake.objects(PERSISTENTVOLUMECLAIMS, "default")[0]

    async with running(fake, VolumeBinder):
        await eventually(lambda: get()["status"]["phase"] == "Bound")
        await asyncio.sleep(0.1)
        got = get()
        volume = f"pvc-{claim['metadata']['uid']}"
        assert got["spec"]["volumeName"] == volume
        assert got["status"] == {
            "phase": "Bound",
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "1Gi"},
        }
        [pv] = fake.objects(PERSISTENTVOLUMES)
        assert pv["metadata"]["name"] == volume and pv["status"] == {"phase": "Bound"}
        assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert pv["spec"]["csi"] == {"driver": PROVISIONER, "volumeHandle": "default/data-db-0"}
        assert pv["spec"]["capacity"] == {"storage": "1Gi"}
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        claim_writes = [a for a in fake.writes() if a.resource == "persistentvolumeclaims"]
        assert len(claim_writes) == 2  # spec.volumeName, then the status: never again
        await fake.delete(PERSISTENTVOLUMECLAIMS, "data-db-0", "default")
        await eventually(lambda: not fake.objects(PERSISTENTVOLUMES))
        await fake.create(PERSISTENTVOLUMES, {
            "metadata": {"name": "hand"}, "status": {"phase": "Pending"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": "/srv"}}})
        await eventually(lambda: fake.objects(PERSISTENTVOLUMES)[0]["status"]["phase"] == "Available")
