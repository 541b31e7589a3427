"""The scheduler: binds pending pods to Ready, schedulable nodes.

Pure part: `feasible_nodes(pod, nodes)` (Ready, not unschedulable, `nodeSelector` labels, required
node affinity, taints with effect NoSchedule/NoExecute tolerated, `NetworkUnavailable=True` read as
Kubernetes' taint-by-condition `node.kubernetes.io/network-unavailable:NoSchedule`) and
`pick_node(pod, nodes, load)` (fewest pods of the same owner, i.e. a StatefulSet's pods spread
across nodes; then fewest pods; then name, so equal inputs give equal answers).

Controller part: a queue of pod keys; pods without `spec.nodeName` whose `schedulerName` is ours
are bound through the `pods/binding` subresource (POST a `Binding`), or, when the server does not
serve it, by patching `spec.nodeName`. Bindings this scheduler made are "assumed" until the pod
cache shows them, so several pods scheduled in a burst still spread (Kubernetes' assume cache).
A pod that fits no node gets a `FailedScheduling` Warning event and `PodScheduled=False`
(reason Unschedulable), and is retried with back-off;
node changes re-queue every pending pod.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import NODES, PODS
from podns.objects import (
    Condition,
    Obj,
    controller_ref,
    get_condition,
    is_terminating,
    labels_of,
    match_labels,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    set_condition,
)

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
#: index of pods by node name ("" for pending pods)
BY_NODE = "node"
#: index of bound pods by "node|controller uid"
BY_NODE_OWNER = "node-owner"


def _node_owner(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    ref = controller_ref(pod)
    return [f"{node}|{ref.get('uid')}"] if node and ref and ref.get("uid") else []


class Unschedulable(Exception):
    """No node fits the pod right now (retried with back-off; also re-queued on node changes)."""


def _tolerates(pod: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    for tol in (pod.get("spec") or {}).get("tolerations") or []:
        if tol.get("effect") and tol.get("effect") != taint.get("effect"):
            continue
        if tol.get("operator") == "Exists" and (not tol.get("key") or tol.get("key") == taint.get("key")):
            return True
        if tol.get("key") == taint.get("key") and tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def _requirement_ok(req: Mapping[str, Any], value: str | None) -> bool:
    op, values = req.get("operator"), [str(v) for v in req.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False  # unknown operator or malformed: matches nothing, as in Kubernetes


def matches_node_affinity(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """`spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`: the terms are
    ORed, the expressions of a term ANDed (`matchExpressions` on labels, `matchFields` on
    `metadata.name`); no requirement matches every node."""
    required = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    labels = labels_of(node)
    for term in terms:
        exprs = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not exprs and not fields:
            continue  # an empty term matches nothing
        if all(_requirement_ok(e, labels.get(str(e.get("key")))) for e in exprs) and all(
                _requirement_ok(f, name_of(node) if f.get("key") == "metadata.name" else None)
                for f in fields):
            return True
    return False


#: the taint Kubernetes' node lifecycle controller puts on a Node whose NetworkUnavailable is True
#: (TaintNodesByCondition); here read straight from the condition
NETWORK_UNAVAILABLE_TAINT = {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}


def tolerates_taints(pod: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """Every NoSchedule/NoExecute taint of `node` (with the condition's taint when its network is
    unavailable) is tolerated by `pod`."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (get_condition(node, "NetworkUnavailable") or {}).get("status") == "True":
        taints.append(NETWORK_UNAVAILABLE_TAINT)
    return all(_tolerates(pod, taint) for taint in taints
               if taint.get("effect") in ("NoSchedule", "NoExecute"))


def node_rejection(pod: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why `node` cannot take `pod` (Kubernetes' predicate wording), or None when it fits."""
    ready = get_condition(node, "Ready")
    if not ready or ready.get("status") != "True":
        return "node(s) were not ready"
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if not match_labels(selector, labels_of(node)) or not matches_node_affinity(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    if not tolerates_taints(pod, node):
        return "node(s) had untolerated taint"
    return None


def feasible_nodes(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> tuple[list[Obj], str]:
    """The nodes that can take `pod`, and when there are none the FailedScheduling message
    ("0/3 nodes are available: 2 node(s) were not ready, 1 node(s) ...")."""
    fits: list[Obj] = []
    reasons: dict[str, int] = {}
    for node in nodes:
        why = node_rejection(pod, node)
        if why is None:
            fits.append(dict(node))
        else:
            reasons[why] = reasons.get(why, 0) + 1
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    message = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
    return fits, message


def pick_node(pod: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]],
              load: Callable[[str, str | None], tuple[int, int]] | None = None) -> str | None:
    """The best feasible node for `pod`, or None. `load(node, owner_uid)` gives (pods of that
    owner on the node, all pods on the node): fewest of the same owner wins (spreading), then
    fewest overall, then the name."""
    fits, _ = feasible_nodes(pod, nodes)
    if not fits:
        return None
    owner = controller_ref(pod)
    owner_uid = str(owner.get("uid")) if owner and owner.get("uid") else None

    def score(node: Mapping[str, Any]) -> tuple[int, int, str]:
        same, total = load(name_of(node), owner_uid) if load is not None else (0, 0)
        return (same, total, name_of(node))

    return name_of(min(fits, key=score))


def needs_scheduling(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and not is_terminating(pod)
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and (pod.get("status") or {}).get("phase", "Pending") == "Pending")


class Scheduler(workerloop.Controller):
    """Binds pending pods to nodes."""

    name = "scheduler"
    workers = 1  # one at a time: each decision sees the previous one (spreading)

    def __init__(self, client: Client, informers: SharedInformers, *,
                 recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.pods = informers.get(PODS)
        self.nodes = informers.get(NODES)
        ensure(self.pods, BY_NODE, lambda p: [(p.get("spec") or {}).get("nodeName") or ""])
        ensure(self.pods, BY_NODE_OWNER, _node_owner)
        #: pod key -> (uid, node) bound by us but not yet seen bound in the cache
        self._assumed: dict[str, tuple[str, str]] = {}
        self._binding_served = True
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n),
                              on_delete=self._on_pod_delete)
        self.nodes.add_handler(on_add=self._on_node, on_update=self._on_node_update)

    def _on_pod(self, pod: Obj) -> None:
        key = object_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self._assumed.pop(key, None)
        elif needs_scheduling(pod):
            self.enqueue(key)

    def _on_pod_delete(self, pod: Obj) -> None:
        self._assumed.pop(object_key(pod), None)

    def _on_node(self, _node: Obj) -> None:
        for pod in self.pods.by_index(BY_NODE, ""):
            if needs_scheduling(pod):
                self.enqueue(object_key(pod))

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        def status(node: Obj, ctype: str) -> object:
            return (get_condition(node, ctype) or {}).get("status")

        if any(status(old, c) != status(new, c) for c in ("Ready", "NetworkUnavailable")) \
                or old.get("spec") != new.get("spec") or labels_of(old) != labels_of(new):
            self._on_node(new)

    def _load(self, node: str, owner_uid: str | None) -> tuple[int, int]:
        """(pods of `owner_uid` on `node`, all pods on `node`), counting our assumed bindings."""
        assumed = [key for key, (_uid, n) in self._assumed.items() if n == node]
        same = len(self.pods.index_keys(BY_NODE_OWNER, f"{node}|{owner_uid}")) if owner_uid else 0
        for key in assumed:
            pod = self.pods.get(key)
            if owner_uid and pod is not None and (controller_ref(pod) or {}).get("uid") == owner_uid:
                same += 1
        return same, len(self.pods.index_keys(BY_NODE, node)) + len(assumed)

    async def sync(self, key: Hashable) -> None:
        key = str(key)
        pod = self.pods.get(key)
        if pod is None or not needs_scheduling(pod):
            return  # gone or already bound
        assumed = self._assumed.get(key)
        if assumed is not None and assumed[0] == meta_of(pod).get("uid"):
            return  # bound by us; the cache has not caught up yet
        nodes = self.nodes.list()
        node = pick_node(pod, nodes, self._load)
        if node is None:
            _, message = feasible_nodes(pod, nodes)
            if self.recorder is not None:
                self.recorder.event(pod, WARNING, "FailedScheduling", message)
            await self._mark_unschedulable(pod, message)
            raise Unschedulable(f"pod {key}: {message}")
        await self._bind(pod, node)
        self._assumed[key] = (str(meta_of(pod).get("uid", "")), node)
        if self.recorder is not None:
            self.recorder.event(pod, NORMAL, "Scheduled", f"Successfully assigned {key} to {node}")

    async def _mark_unschedulable(self, pod: Obj, message: str) -> None:
        """Set the pod's PodScheduled condition to False/Unschedulable (what `kubectl describe
        pod` shows); best-effort: a failure here must not hide the scheduling failure."""
        conditions: list[Condition] = [c.copy() for c in (pod.get("status") or {}).get("conditions") or []]
        want: Condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": message}
        if not set_condition(conditions, want):
            return
        ns, name = namespace_of(pod), name_of(pod)
        try:
            await self.client.patch(PODS, name, {"status": {"conditions": conditions}}, ns,
                                    subresource="status")
        except errors.KubeError as exc:
            log.debug("marking %s/%s unschedulable: %s", ns, name, exc)

    async def _bind(self, pod: Obj, node: str) -> None:
        ns, name = namespace_of(pod), name_of(pod)
        if self._binding_served:
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": name, "namespace": ns, "uid": meta_of(pod).get("uid")},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            try:
                await self.client.request("POST", PODS.path(ns, name, "binding"), json=binding)
                return
            except (errors.NotFound, errors.MethodNotAllowed) as exc:
                if self.pods.get(object_key(pod)) is None:
                    raise
                log.info("pods/binding not served (%s); binding by patching spec.nodeName", exc.code)
                self._binding_served = False
        await self.client.patch(PODS, name, {"spec": {"nodeName": node}}, ns)

    def handle_error(self, key: Hashable, exc: BaseException, retrying: bool) -> None:
        if isinstance(exc, Unschedulable):
            self.failures += 1
            log.debug("%s", exc)  # reported as a FailedScheduling event
            return
        super().handle_error(key, exc, retrying)


__all__ = ["Scheduler", "feasible_nodes", "matches_node_affinity", "pick_node", "tolerates_taints"]
