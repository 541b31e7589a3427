"""The StatefulSet control as a specification: set + pods + claims -> this step's actions."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podns.controllers._revision import (
    equal_revision,
    history_to_delete,
    new_revision,
    revision_template,
    template_hash,
)
from podns.controllers.statefulset.control import (
    StsPlan,
    compute_status,
    plan,
)
from podns.objects import now_rfc3339
from podns.objects.wellknown import POD_INDEX_LABEL, POD_NAME_LABEL, REVISION_LABEL

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def statefulset(
    replicas: int = 3,
    *,
    parallel: bool = False,
    image: str = "db:1",
    partition: int = 0,
    on_delete: bool = False,
    claims: bool = False,
    when_scaled: str = "Retain",
    start: int = 0,
    min_ready: int = 0,
) -> Obj:
    spec: Obj = {
        "replicas": replicas,
        "serviceName": "db-service",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": image}]},
        },
        "podManagementPolicy": "Parallel" if parallel else "OrderedReady",
        "updateStrategy": {"type": "OnDelete"}
        if on_delete
        else {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
        "ordinals": {"start": start},
        "minReadySeconds": min_ready,
    }
    if claims:
        spec["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        ]
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": "Retain", "whenScaled": when_scaled}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default", "uid": "uid-sts", "generation": 1},
        "spec": spec,
    }


class World:
    """A tiny in-memory cluster: applies a plan's actions and plays the kubelet."""

    def __init__(self, sts: Obj) -> None:
        self.sts = sts
        self.pods: dict[str, Obj] = {}
        self.claims: dict[str, Obj] = {}
        self.revisions: list[Obj] = []
        self.log: list[str] = []

    def revision(self) -> Obj:
        want = new_revision(self.sts, 1)
        rev = equal_revision(self.revisions, want)
        if rev is None:
            rev = new_revision(self.sts, len(self.revisions) + 1)
            self.revisions.append(rev)
        return rev

    def step(self) -> StsPlan:
        update = self.revision()
        current_name = (self.sts.get("status") or {}).get("currentRevision")
        current = next((r for r in self.revisions if r["metadata"]["name"] == current_name), update)
        p = plan(self.sts, list(self.pods.values()), self.claims, current=current, update=update, now=NOW)
        for a in p.actions:
            name = a.obj["metadata"]["name"]
            self.log.append(f"{a.kind} {name}")
            if a.kind == "create_pod":
                self.pods[name] = copy.deepcopy(a.obj) | {"status": {"phase": "Pending"}}
            elif a.kind == "delete_pod":
                del self.pods[name]
            elif a.kind == "create_pvc":
                self.claims[name] = copy.deepcopy(a.obj)
            elif a.kind == "delete_pvc":
                del self.claims[name]
            elif a.kind == "patch_pod":
                self.pods[name]["metadata"]["labels"].update(a.patch["metadata"]["labels"])
        self.sts["status"] = p.status
        return p

    def run_pods(self, ready: bool = True) -> None:
        for pod in self.pods.values():
            pod["status"] = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": "2020-01-01T00:00:00Z",
                    }
                ],
            }

    def converge(self, rounds: int = 30) -> None:
        for _ in range(rounds):
            p = self.step()
            self.run_pods()
            if not p.actions:
                p = self.step()
                if not p.actions:
                    return
        raise AssertionError(f"did not converge: {self.log}")


def test_ordered_ready_creates_one_pod_at_a_time() -> None:
    """Given OrderedReady with 3 replicas, then db-0 is created alone, db-1 only once db-0 is
    Running and Ready, and so on."""
    w = World(statefulset())
    assert [a.kind for a in w.step().actions] == ["create_pod"]
    assert not w.step().actions  # db-0 Pending: wait
    w.run_pods(ready=False)
    assert not w.step().actions  # Running but not Ready: wait
    w.run_pods()
    assert [a.obj["metadata"]["name"] for a in w.step().actions] == ["db-1"]
    w.converge()
    assert sorted(w.pods) == ["db-0", "db-1", "db-2"]
    assert w.log == ["create_pod db-0", "create_pod db-1", "create_pod db-2"]


def test_pod_identity() -> None:
    """Given a StatefulSet, then pods carry hostname, subdomain, identity labels, revision label
    and a controller owner reference."""
    w = World(statefulset(1, start=5))
    w.converge()
    pod = w.pods["db-5"]
    assert pod["spec"]["hostname"] == "db-5" and pod["spec"]["subdomain"] == "db-service"
    labels = pod["metadata"]["labels"]
    assert labels[POD_NAME_LABEL] == "db-5" and labels[POD_INDEX_LABEL] == "5" and labels["app"] == "db"
    assert labels[REVISION_LABEL] == w.revisions[0]["metadata"]["name"]
    ref = pod["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"], ref["controller"]) == ("StatefulSet", "uid-sts", True)


def test_parallel_creates_all_at_once() -> None:
    """Given Parallel, then all pods are created in one step without waiting."""
    w = World(statefulset(3, parallel=True))
    assert [a.obj["metadata"]["name"] for a in w.step().actions] == ["db-0", "db-1", "db-2"]


def test_scale_down_reverse_one_at_a_time() -> None:
    """Given 5 ready pods scaled to 2, then db-4, db-3, db-2 are deleted in that order, one per
    step."""
    w = World(statefulset(5))
    w.converge()
    w.sts["spec"]["replicas"] = 2
    w.log.clear()
    assert [a.obj["metadata"]["name"] for a in w.step().actions] == ["db-4"]
    w.converge()
    assert w.log == ["delete_pod db-4", "delete_pod db-3", "delete_pod db-2"]


def test_scale_down_waits_for_unhealthy_pods() -> None:
    """Given OrderedReady scale-down while a remaining pod is not Ready, then nothing is deleted."""
    w = World(statefulset(3))
    w.converge()
    w.sts["spec"]["replicas"] = 1
    w.pods["db-0"]["status"]["conditions"][0]["status"] = "False"
    assert not w.step().actions


def test_failed_pod_recreated_with_same_identity_and_claim() -> None:
    """Given a Failed db-1 with a claim, then it is deleted and recreated as db-1 using claim
    data-db-1."""
    w = World(statefulset(3, claims=True))
    w.converge()
    assert sorted(w.claims) == ["data-db-0", "data-db-1", "data-db-2"]
    w.pods["db-1"]["status"]["phase"] = "Failed"
    w.log.clear()
    w.converge()
    assert w.log == ["delete_pod db-1", "create_pod db-1"]
    vols = w.pods["db-1"]["spec"]["volumes"]
    assert vols == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}}]


def test_claims_created_before_pod_and_retention_on_scale() -> None:
    """Given whenScaled Delete, when scaled from 3 to 1, then claims of db-1/db-2 go after their
    pods; with Retain they stay."""
    for policy, left in (("Delete", ["data-db-0"]), ("Retain", ["data-db-0", "data-db-1", "data-db-2"])):
        w = World(statefulset(3, claims=True, when_scaled=policy))
        assert [a.kind for a in w.step().actions] == ["create_pvc", "create_pod"]
        w.run_pods()
        w.converge()
        w.sts["spec"]["replicas"] = 1
        w.converge()
        assert sorted(w.claims) == left, policy


def test_rolling_update_reverse_order_then_current_revision() -> None:
    """Given 3 pods at revision A, when the image changes, then pods are replaced db-2, db-1,
    db-0, each after the previous is healthy, and status.currentRevision becomes B."""
    w = World(statefulset(3))
    w.converge()
    rev_a = w.sts["status"]["currentRevision"]
    w.sts["spec"]["template"]["spec"]["containers"][0]["image"] = "db:2"
    w.sts["metadata"]["generation"] = 2
    w.log.clear()
    w.converge()
    assert w.log == [
        "delete_pod db-2",
        "create_pod db-2",
        "delete_pod db-1",
        "create_pod db-1",
        "delete_pod db-0",
        "create_pod db-0",
    ]
    st = w.sts["status"]
    assert st["currentRevision"] == st["updateRevision"] != rev_a
    assert (st["replicas"], st["readyReplicas"], st["updatedReplicas"], st["currentReplicas"]) == (3, 3, 3, 3)
    assert st["observedGeneration"] == 2
    assert revision_template(w.revisions[1])["spec"]["containers"][0]["image"] == "db:2"


def test_partition_keeps_lower_ordinals() -> None:
    """Given partition 2, then only db-2 is updated; currentRevision stays A."""
    w = World(statefulset(3, partition=2))
    w.converge()
    rev_a = w.sts["status"]["currentRevision"]
    w.sts["spec"]["template"]["spec"]["containers"][0]["image"] = "db:2"
    w.log.clear()
    w.converge()
    assert w.log == ["delete_pod db-2", "create_pod db-2"]
    assert w.sts["status"]["currentRevision"] == rev_a and w.sts["status"]["updatedReplicas"] == 1
    assert w.pods["db-0"]["metadata"]["labels"][REVISION_LABEL] == rev_a


def test_on_delete_only_replaces_deleted_pods() -> None:
    """Given OnDelete, when the template changes, then nothing happens until a pod is deleted,
    which comes back at the update revision."""
    w = World(statefulset(2, on_delete=True))
    w.converge()
    w.sts["spec"]["template"]["spec"]["containers"][0]["image"] = "db:2"
    w.log.clear()
    w.converge()
    assert w.log == []
    del w.pods["db-1"]
    w.converge()
    assert w.pods["db-1"]["metadata"]["labels"][REVISION_LABEL] == w.sts["status"]["updateRevision"]


def test_min_ready_seconds_requeues() -> None:
    """Given minReadySeconds 30 and db-0 Ready for 10 s, then no db-1 yet and a requeue in ~20 s."""
    w = World(statefulset(2, min_ready=30))
    w.step()
    w.pods["db-0"]["status"] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now_rfc3339(NOW - 10)}],
    }
    p = w.step()
    assert not p.actions and p.requeue_after == pytest.approx(20.05, abs=0.01)
    assert p.status["readyReplicas"] == 1 and p.status["availableReplicas"] == 0


def test_status_counts_and_terminating_set() -> None:
    """Given a set being deleted, then no actions, only status."""
    sts = statefulset(2)
    sts["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    w = World(sts)
    assert not w.step().actions
    st = compute_status(sts, [], "a", "a", NOW)
    assert st["replicas"] == 0 and st["currentRevision"] == "a"


def test_revision_hash_and_history() -> None:
    """Revision names are stable for equal templates and differ with the collision count; history
    keeps at most `limit` non-live revisions, dropping the oldest."""
    sts = statefulset()
    assert new_revision(sts, 1)["metadata"]["name"] == new_revision(sts, 7)["metadata"]["name"]
    h = template_hash(sts["spec"]["template"])
    assert h != template_hash(sts["spec"]["template"], 1) and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    revs = [{"metadata": {"name": f"r{i}"}, "revision": i} for i in range(1, 6)]
    assert [r["metadata"]["name"] for r in history_to_delete(revs, {"r5"}, 2)] == ["r1", "r2"]


def test_when_deleted_delete_makes_the_set_own_its_claims() -> None:
    """Given whenDeleted: Delete, then new claims carry an owner reference to the set (so the
    garbage collector deletes them with it); with Retain they carry none."""
    sts = statefulset(1, claims=True)
    w = World(sts)
    w.step()
    assert "ownerReferences" not in w.claims["data-db-0"]["metadata"]
    sts = statefulset(1, claims=True)
    sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] = "Delete"
    w = World(sts)
    w.step()
    ref = w.claims["data-db-0"]["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["uid"]) == ("StatefulSet", "uid-sts")
