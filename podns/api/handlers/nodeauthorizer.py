"""The Node authorizer and node restrictions (Kubernetes' `plugin/pkg/auth/authorizer/node` and
the NodeRestriction admission plugin), in front of RBAC.

A node agent authenticates as `system:node:<name>` in group `system:nodes` (its client
certificate, see `podns.api.server.kubeconfig`). For such a user:

- Secrets, ConfigMaps, PersistentVolumeClaims: only `get` (and a named list/watch) of one that a
  pod bound to the node refers to (`podns.objects.podrefs`); ServiceAccounts: only creating a
  token for the account of such a pod. Anything else: no opinion, with Kubernetes' reason ("no
  relationship found between node 'b' and this object"), which RBAC may still allow.
- Leases: only its own, in `kube-node-lease`.
- Writes to Nodes and Pods (status, deletion, eviction, creation) are limited to its own Node
  and the pods bound to it, with NodeRestriction's 403 wording (`node "b" can only update pod
  status for pods with spec.nodeName set to itself`).
- Everything else is allowed when the rules of Kubernetes' `system:node` ClusterRole allow it
  (`rbacpolicy.NODE_RULES`), else RBAC decides.

The graph (which node runs which pod, what each pod refers to) is fed by a store watch on pods,
like the authorizer's RBAC index: a decision never touches the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from podns.api.handlers.authorization import (
    ALLOW,
    DENY,
    NO_OPINION,
    Attributes,
    Decision,
    Obj,
    UserInfo,
    compile_rules,
    follow,
    node_name_of,
)
from podns.api.handlers.rbacpolicy import NODE_RULES
from podns.objects.podrefs import pod_references
from podns.store.interface import Store, WatchEvent

PODS_PREFIX = "pods/"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

_RULES = compile_rules(NODE_RULES)


_ALLOWED = Decision(ALLOW)
_NONE = Decision(NO_OPINION)


class NodeGraph:
    """Pods bound to nodes and the objects they refer to: `edges[(kind, ns, name)]` counts, per
    node, the pods there referring to the object; `pod_node[(ns, name)]` is a pod's node."""

    def __init__(self) -> None:
        self.edges: dict[tuple[str, str, str], Counter[str]] = {}
        self.pod_node: dict[tuple[str, str], str] = {}
        self._contrib: dict[str, tuple[str, list[tuple[str, str, str]]]] = {}

    def set_pod(self, key: str, pod: Obj | None) -> None:
        """Record (or, with None, forget) the pod stored under `key`."""
        old = self._contrib.pop(key, None)
        if old is not None:
            node, refs = old
            for ref in refs:
                counts = self.edges.get(ref)
                if counts is not None:
                    counts[node] -= 1
                    if counts[node] <= 0:
                        del counts[node]
                    if not counts:
                        del self.edges[ref]
            self.pod_node.pop((ref_ns(key), ref_name(key)), None)
        if pod is None:
            return
        meta = pod.get("metadata") or {}
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            return
        self.pod_node[(ns, name)] = node
        found = pod_references(pod)
        refs = ([("secrets", ns, n) for n in found.secrets]
                + [("configmaps", ns, n) for n in found.configmaps]
                + [("persistentvolumeclaims", ns, n) for n in found.pvcs]
                + [("serviceaccounts", ns, found.service_account or "default")])
        for ref in refs:
            self.edges.setdefault(ref, Counter())[node] += 1
        self._contrib[key] = (node, refs)

    def related(self, node: str, kind: str, ns: str, name: str) -> bool:
        return node in self.edges.get((kind, ns, name), ())


def ref_ns(key: str) -> str:
    return key[len(PODS_PREFIX):].partition("/")[0]


def ref_name(key: str) -> str:
    return key[len(PODS_PREFIX):].partition("/")[2]


class NodeAuthorizer:
    """`await start()` lists and watches pods; `decide(attrs)` for node users; `await stop()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.graph = NodeGraph()
        self._task: asyncio.Task[None] | None = None
        #: the store revision the graph reflects (tests wait on it)
        self.synced_rv = 0

    async def start(self) -> None:
        rv = await self._relist()
        self._task = asyncio.create_task(follow(self.store, PODS_PREFIX, rv, self._apply, self._relist),
                                         name="node-authorizer-pods")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _relist(self) -> int:
        listing = await self.store.list(PODS_PREFIX)
        graph = NodeGraph()
        for pod in listing.items:
            meta = pod.get("metadata") or {}
            graph.set_pod(f"{PODS_PREFIX}{meta.get('namespace')}/{meta.get('name')}", pod)
        self.graph = graph
        self.synced_rv = max(self.synced_rv, listing.rv)
        return listing.rv

    def _apply(self, ev: WatchEvent) -> None:
        self.graph.set_pod(ev.key, None if ev.type == "DELETED" else ev.object)
        self.synced_rv = max(self.synced_rv, ev.rv)

    # -- decisions ---------------------------------------------------------------------------

    def decide(self, a: Attributes) -> Decision | None:
        """The decision for a node user's request; None when `a.user` is not a node."""
        node = node_name_of(a.user)
        if node is None:
            return None
        if not node:
            return Decision(NO_OPINION, f'unknown node for user "{a.user.name}"')
        if a.resource_request:
            check = _CHECKS.get((a.group, a.resource))
            if check is not None:
                decided: Decision | None = check(self, node, a)
                if decided is not None:
                    return decided
        return _ALLOWED if any(rule.allows(a) for rule in _RULES) else _NONE

    def _read_referenced(self, node: str, a: Attributes) -> Decision:
        """Secrets and ConfigMaps: get/list/watch of one object a pod of the node refers to."""
        if a.verb not in ("get", "list", "watch"):
            return Decision(NO_OPINION, "can only read resources of this type")
        if a.subresource:
            return Decision(NO_OPINION, "cannot read subresource")
        if not a.namespace:
            return Decision(NO_OPINION, "can only read namespaced object of this type")
        return self._related(node, a)

    def _get_referenced(self, node: str, a: Attributes) -> Decision:
        """PersistentVolumeClaims: get of one a pod of the node uses."""
        if a.verb != "get":
            return Decision(NO_OPINION, "can only get individual resources of this type")
        if a.subresource:
            return Decision(NO_OPINION, "cannot get subresource")
        return self._related(node, a)

    def _token(self, node: str, a: Attributes) -> Decision:
        """ServiceAccounts: creating a token for the account of a pod of the node."""
        if a.verb != "create" or not a.name:
            return Decision(NO_OPINION, "can only create tokens for individual service accounts")
        if a.subresource != "token":
            return Decision(NO_OPINION, "can only create token subresource of serviceaccount")
        return self._related(node, a)

    def _related(self, node: str, a: Attributes) -> Decision:
        if not a.name:
            return Decision(NO_OPINION, "No Object name found")
        if self.graph.related(node, a.resource, a.namespace, a.name):
            return _ALLOWED
        return Decision(NO_OPINION, f"no relationship found between node '{node}' and this object")

    def _lease(self, node: str, a: Attributes) -> Decision:
        if a.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(NO_OPINION, "can only get, create, update, patch, or delete a node lease")
        if a.namespace != NODE_LEASE_NAMESPACE:
            return Decision(NO_OPINION, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" '
                                        "system namespace")
        if a.verb != "create" and a.name != node:
            return Decision(NO_OPINION, "can only access node lease with the same name as the "
                                        "requesting node")
        return _ALLOWED

    def _node(self, node: str, a: Attributes) -> Decision | None:
        """NodeRestriction: a node modifies only its own Node object."""
        if a.verb in ("update", "patch", "delete") and a.name and a.name != node:
            return Decision(DENY, f'node "{node}" is not allowed to modify node "{a.name}"')
        return None

    def _pod(self, node: str, a: Attributes) -> Decision | None:
        """NodeRestriction: status, deletion and eviction only of the pods bound to the node."""
        what = {("update", "status"): "update pod status for pods",
                ("patch", "status"): "update pod status for pods",
                ("delete", ""): "delete pods", ("create", "eviction"): "evict pods"}.get(
                    (a.verb, a.subresource))
        if what is None or not a.name:
            return None
        bound = self.graph.pod_node.get((a.namespace, a.name))
        if bound is not None and bound != node:
            return Decision(DENY, f'node "{node}" can only {what} with spec.nodeName set to itself')
        return None

    def admit_create(self, user: UserInfo, resource: str, group: str, body: Any) -> str | None:
        """NodeRestriction on create, where the name is in the body: a node creates only its own
        Node and Lease, and only mirror pods bound to itself. The 403 reason, or None."""
        node = node_name_of(user)
        if not node or not isinstance(body, dict):
            return None
        meta = body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        name = str(meta.get("name") or "")
        if (group, resource) == ("", "nodes") and name != node:
            return f'node "{node}" is not allowed to modify node "{name}"'
        if (group, resource) == ("coordination.k8s.io", "leases") and name != node:
            return "can only create a node lease with the same name as the requesting node"
        if (group, resource) == ("", "pods"):
            if MIRROR_ANNOTATION not in (meta.get("annotations") or {}):
                return (f'pod does not have "{MIRROR_ANNOTATION}" annotation, node "{node}" can '
                        "only create mirror pods")
            if str((body.get("spec") or {}).get("nodeName") or "") != node:
                return f'node "{node}" can only create pods with spec.nodeName set to itself'
        return None


#: the resources the Node authorizer subdivides (Kubernetes' switch in NodeAuthorizer.Authorize)
_CHECKS: dict[tuple[str, str], Callable[[NodeAuthorizer, str, Attributes], Decision | None]] = {
    ("", "secrets"): NodeAuthorizer._read_referenced,
    ("", "configmaps"): NodeAuthorizer._read_referenced,
    ("", "persistentvolumeclaims"): NodeAuthorizer._get_referenced,
    ("", "serviceaccounts"): NodeAuthorizer._token,
    ("coordination.k8s.io", "leases"): NodeAuthorizer._lease,
    ("", "nodes"): NodeAuthorizer._node,
    ("", "pods"): NodeAuthorizer._pod,
}
