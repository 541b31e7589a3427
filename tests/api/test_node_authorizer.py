"""The Node authorizer's decisions from its pod graph (no server): what a node may read and
write, with Kubernetes' reasons."""

from __future__ import annotations

from typing import Any

import pytest

from podns.api.handlers.authorization import ALLOW, DENY, NO_OPINION, Attributes, UserInfo
from podns.api.handlers.nodeauthorizer import NodeAuthorizer, NodeGraph

NODE = UserInfo("system:node:a", ("system:nodes", "system:authenticated"))


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c"}], **spec}}


USES = pod("p", "a", serviceAccountName="app",
           volumes=[{"name": "v", "secret": {"secretName": "vol-secret"}},
                    {"name": "w", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
                    {"name": "x", "persistentVolumeClaim": {"claimName": "data"}}],
           imagePullSecrets=[{"name": "pull"}],
           initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}])


def authorizer(*pods: dict[str, Any]) -> NodeAuthorizer:
    na = NodeAuthorizer(store=None)  # type: ignore[arg-type]  # decisions only: no store I/O
    for p in pods:
        na.graph.set_pod(f"pods/ns/{p['metadata']['name']}", p)
    return na


def attrs(verb: str, resource: str, name: str = "", *, ns: str = "ns", group: str = "",
          sub: str = "") -> Attributes:
    return Attributes(NODE, verb, namespace=ns, group=group, resource=resource, subresource=sub, name=name)


@pytest.mark.parametrize(("a", "verdict", "reason"), [
    (attrs("get", "secrets", "vol-secret"), ALLOW, ""),
    (attrs("get", "secrets", "pull"), ALLOW, ""),
    (attrs("get", "configmaps", "proj-cm"), ALLOW, ""),
    (attrs("get", "persistentvolumeclaims", "data"), ALLOW, ""),
    (attrs("create", "serviceaccounts", "app", sub="token"), ALLOW, ""),
    (attrs("get", "secrets", "other"), NO_OPINION, "no relationship found between node 'a' and this object"),
    (attrs("get", "secrets", "their-secret"), NO_OPINION,
     "no relationship found between node 'a' and this object"),
    (attrs("list", "secrets"), NO_OPINION, "No Object name found"),
    (attrs("delete", "secrets", "vol-secret"), NO_OPINION, "can only read resources of this type"),
    (attrs("get", "serviceaccounts", "app"), NO_OPINION,
     "can only create tokens for individual service accounts"),
    (attrs("update", "leases", "a", ns="kube-node-lease", group="coordination.k8s.io"), ALLOW, ""),
    (attrs("update", "leases", "b", ns="kube-node-lease", group="coordination.k8s.io"), NO_OPINION,
     "can only access node lease with the same name as the requesting node"),
    (attrs("patch", "nodes", "a", ns="", sub="status"), ALLOW, ""),
    (attrs("patch", "nodes", "b", ns=""), DENY, 'node "a" is not allowed to modify node "b"'),
    (attrs("patch", "pods", "p", sub="status"), ALLOW, ""),
    (attrs("patch", "pods", "q", sub="status"), DENY,
     'node "a" can only update pod status for pods with spec.nodeName set to itself'),
    (attrs("delete", "pods", "q"), DENY, 'node "a" can only delete pods with spec.nodeName set to itself'),
    (attrs("list", "pods", ns=""), ALLOW, ""),
    (attrs("create", "events"), ALLOW, ""),
    (attrs("create", "deployments", group="apps"), NO_OPINION, ""),
], ids=lambda v: v if isinstance(v, str) else None)
def test_node_decisions(a: Attributes, verdict: str, reason: str) -> None:
    """given node a running pod p (USES) and node b running q (using their-secret), the
    decision and reason for each request of node a."""
    other = pod("q", "b", containers=[{"name": "c", "envFrom": [{"secretRef": {"name": "their-secret"}}]}])
    decided = authorizer(USES, other).decide(a)
    assert decided is not None and (decided.verdict, decided.reason) == (verdict, reason)


def test_graph_forgets_deleted_and_moved_pods() -> None:
    """given a pod's references counted once per pod, deleting the pod (or a second pod using the
    same secret staying) updates what the node may read."""
    g = NodeGraph()
    g.set_pod("pods/ns/p", USES)
    g.set_pod("pods/ns/p2", pod("p2", "a", volumes=[{"name": "v", "secret": {"secretName": "vol-secret"}}]))
    g.set_pod("pods/ns/p", None)
    assert g.related("a", "secrets", "ns", "vol-secret")  # p2 still uses it
    assert not g.related("a", "secrets", "ns", "pull") and ("ns", "p") not in g.pod_node
    g.set_pod("pods/ns/p2", None)
    assert not g.edges and not g.pod_node


def test_non_nodes_are_not_its_business() -> None:
    """given a user outside system:nodes, the Node authorizer has no decision (None)."""
    assert authorizer().decide(Attributes(UserInfo("dana"), "get", resource="secrets", name="x")) is None
