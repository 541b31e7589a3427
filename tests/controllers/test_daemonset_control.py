"""The DaemonSet control as a specification: DaemonSet + nodes + pods -> this step's writes."""

from __future__ import annotations

import copy
from typing import Any

from podns.controllers.daemonset.control import HASH_LABEL, plan, revision_hash

from ._builders import node, pod

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def daemonset(*, selector: dict[str, str] | None = None, tolerations: list[Obj] | None = None,
              image: str = "agent:1", max_unavailable: Any = 1) -> Obj:
    spec: Obj = {"containers": [{"name": "agent", "image": image}]}
    if selector:
        spec["nodeSelector"] = selector
    if tolerations:
        spec["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": "uid-ds", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}, "spec": spec},
                     "updateStrategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": max_unavailable}}}}


def tainted(name: str, effect: str = "NoSchedule") -> Obj:
    n = node(name)
    n["spec"]["taints"] = [{"key": "dedicated", "value": "db", "effect": effect}]
    return n


def dpod(name: str, on: str, digest: str, **kw: Any) -> Obj:
    return pod(name, node=on, labels={"app": "agent", HASH_LABEL: digest}, **kw)


def test_one_pod_per_matching_node() -> None:
    """Given three nodes, one tainted NoSchedule, one not matching the nodeSelector, then one pod
    is created for the matching untainted node, bound to it by nodeName and node affinity, with
    the daemon tolerations; the status counts desired 1."""
    nodes = [node("n1"), tainted("n2"), node("n3")]
    nodes[0]["metadata"]["labels"]["role"] = "edge"
    nodes[1]["metadata"]["labels"]["role"] = "edge"
    ds = daemonset(selector={"role": "edge"})
    p = plan(ds, nodes, [], now=NOW)
    assert [x["spec"]["nodeName"] for x in p.create] == ["n1"]
    body = p.create[0]
    term = body["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["nodeSelectorTerms"][0]["matchFields"][0]["values"] == ["n1"]
    assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} \
        in body["spec"]["tolerations"]
    assert body["metadata"]["labels"][HASH_LABEL] == revision_hash(ds)
    assert p.status["desiredNumberScheduled"] == 1 and p.status["currentNumberScheduled"] == 0


def test_toleration_admits_tainted_node_and_misscheduled_pods_go() -> None:
    """Given a toleration for the taint, then the tainted node gets a pod too; a pod on a node that
    should not run one is deleted and counted misscheduled; duplicates on a node keep the oldest."""
    ds = daemonset(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                 "effect": "NoSchedule"}])
    digest = revision_hash(ds)
    nodes = [node("n1"), tainted("n2")]
    pods = [dpod("a", "n1", digest), dpod("b", "n1", digest), dpod("c", "gone", digest)]
    pods[1]["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    p = plan(ds, nodes, pods, now=NOW)
    assert [x["spec"]["nodeName"] for x in p.create] == ["n2"]
    assert sorted(x["metadata"]["name"] for x in p.delete) == ["b", "c"]
    assert p.status["numberMisscheduled"] == 1


def test_rolling_update_respects_max_unavailable() -> None:
    """Given 3 nodes with available outdated pods and maxUnavailable 1, then one pod is deleted per
    step, the next only once its replacement is available."""
    old = daemonset()
    new = daemonset(image="agent:2")
    nodes = [node(f"n{i}") for i in range(3)]
    pods = {f"n{i}": dpod(f"p{i}", f"n{i}", revision_hash(old)) for i in range(3)}
    p = plan(new, nodes, list(pods.values()), now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["p0"] and not p.create
    del pods["n0"]
    p = plan(new, nodes, list(pods.values()), now=NOW)
    assert [x["spec"]["nodeName"] for x in p.create] == ["n0"] and not p.delete  # budget used by n0
    pods["n0"] = dpod("q0", "n0", revision_hash(new), ready=False)
    assert not plan(new, nodes, list(pods.values()), now=NOW).delete  # q0 not yet available
    pods["n0"] = dpod("q0", "n0", revision_hash(new))
    p = plan(new, nodes, list(pods.values()), now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["p1"]
    assert p.status["updatedNumberScheduled"] == 1 and p.status["numberAvailable"] == 3


def test_failed_pod_replaced_and_on_delete_keeps_old() -> None:
    """Given a Failed pod, then it is deleted and a new one created; with OnDelete an outdated pod
    is left alone."""
    ds = daemonset()
    digest = revision_hash(ds)
    p = plan(ds, [node("n1")], [dpod("a", "n1", digest, phase="Failed")], now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["a"] and len(p.create) == 1
    on_delete = copy.deepcopy(daemonset(image="agent:2"))
    on_delete["spec"]["updateStrategy"] = {"type": "OnDelete"}
    assert not plan(on_delete, [node("n1")], [dpod("a", "n1", digest)], now=NOW).delete


def test_no_schedule_taint_keeps_running_pod_no_execute_evicts() -> None:
    """Given a running daemon pod, when its node gets a NoSchedule taint, then the pod stays
    (misscheduled); with a NoExecute taint it is deleted."""
    ds = daemonset()
    running = [dpod("a", "n1", revision_hash(ds))]
    p = plan(ds, [tainted("n1")], running, now=NOW)
    assert not p.delete and not p.create and p.status["numberMisscheduled"] == 1
    p = plan(ds, [tainted("n1", "NoExecute")], running, now=NOW)
    assert [x["metadata"]["name"] for x in p.delete] == ["a"]
