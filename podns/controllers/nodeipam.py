"""Node IPAM: every Node without a pod CIDR gets one from the cluster CIDR (Kubernetes' node IPAM
controller, range allocator).

`--cluster-cidr` (default 10.244.0.0/16, flannel's and kind's range; one or two comma-separated
CIDRs, at most one per family) is cut into blocks of `--node-cidr-mask-size` (24 for IPv4: 254
pods per node, as kubeadm; 64 for IPv6); a Node whose `spec.podCIDR` is empty gets the first block
that overlaps no other Node's pod CIDR (whoever set it: an agent's `--pod-cidr`, a loopback-mode
agent's 127.x range), written as `spec.podCIDR` and `spec.podCIDRs` (one per family, the first
family of `--cluster-cidr` first). A Node that has a pod CIDR is never changed (Kubernetes makes it
immutable); a Node deleted frees its block.

The node agent in namespace mode waits for this assignment (and checks the block against its
machine's own routes, see `podns.node.agent`); loopback-mode agents set their own 127.x range.

Errors: a cluster CIDR with no free block left is not retried (non-transient): the Node gets a
`CIDRNotAvailable` event and the condition `NetworkUnavailable=True` (reason `CIDRNotAvailable`)
and is looked at again when another Node goes away. Bad flags (`parse_cluster_cidrs`,
`check_mask`) are ValueErrors with the flag's name, raised before anything runs.

One worker: blocks are handed out one Node at a time, and a block just written is remembered until
the informer shows it, so two Nodes never get the same one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Hashable, Iterable
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import WARNING, EventRecorder
from podns.kube.resources import NODES
from podns.objects import Obj, name_of, now_rfc3339
from podns.objects.cidrs import parse_cidrs

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: flannel's and kind's pod range (podns's netns mode used it before this controller existed)
DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
#: the dual-stack default (`podns up` with an IPv6 service CIDR): a unique local /56 beside it,
#: 256 blocks of /64 (Kubernetes' --node-cidr-mask-size-ipv6 default)
DEFAULT_CLUSTER_CIDR_DUAL = "10.244.0.0/16,fd00:10:244::/56"
#: kube-controller-manager's defaults (--node-cidr-mask-size-ipv4 / -ipv6)
DEFAULT_MASK_V4 = 24
DEFAULT_MASK_V6 = 64
#: the smallest block worth giving a node: a /29 holds 5 pods beside the gateway (the agent's limit)
MAX_MASK_V4 = 29
MAX_MASK_V6 = 125


def parse_cluster_cidrs(text: str) -> list[Network]:
    """`--cluster-cidr`: one or two CIDRs, at most one per family (`podns.objects.cidrs`).
    ValueError says what is wrong, naming the flag."""
    try:
        return parse_cidrs(text)
    except ValueError as exc:
        raise ValueError(f"--cluster-cidr: {exc}") from None


def check_mask(cluster: Network, mask: int) -> None:
    """ValueError when blocks of `/mask` do not fit `cluster` or are too small for pods."""
    limit = MAX_MASK_V4 if cluster.version == 4 else MAX_MASK_V6
    if mask < cluster.prefixlen:
        raise ValueError(f"--node-cidr-mask-size {mask}: larger than the cluster CIDR {cluster}")
    if mask > limit:
        raise ValueError(f"--node-cidr-mask-size {mask}: a /{mask} per node is too small "
                         f"(at most /{limit} for IPv{cluster.version})")


def allocate(cluster: Network, mask: int, used: Iterable[Network]) -> Network | None:
    """The first `/mask` block of `cluster` overlapping nothing in `used` (None when all do)."""
    taken = [u for u in used if u.version == cluster.version and u.overlaps(cluster)]
    for block in cluster.subnets(new_prefix=mask):
        if not any(block.overlaps(u) for u in taken):
            return block
    return None


def node_cidrs(node: Obj) -> list[Network]:
    """The pod CIDRs a Node holds (`spec.podCIDRs`, else `spec.podCIDR`; malformed ones skipped)."""
    spec = node.get("spec") or {}
    raw = list(spec.get("podCIDRs") or []) or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    out: list[Network] = []
    for cidr in raw:
        try:
            out.append(ipaddress.ip_network(str(cidr), strict=False))
        except ValueError:
            continue
    return out


class NodeIPAMController(workerloop.Controller):
    """See the module docstring."""

    name = "nodeipam"
    workers = 1  # one allocation at a time: never the same block twice

    def __init__(self, client: Client, informers: SharedInformers, *,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR, mask_v4: int = DEFAULT_MASK_V4,
                 mask_v6: int = DEFAULT_MASK_V6, recorder: EventRecorder | None = None) -> None:
        super().__init__()
        self.client = client
        self.recorder = recorder
        self.clusters = parse_cluster_cidrs(cluster_cidr)
        self.masks = {4: mask_v4, 6: mask_v6}
        for c in self.clusters:
            check_mask(c, self.masks[c.version])
        self.nodes = informers.get(NODES)
        #: node -> blocks written but not yet seen in the cache
        self._written: dict[str, list[Network]] = {}
        self.nodes.add_handler(on_add=self._on_node, on_update=lambda _o, n: self._on_node(n),
                               on_delete=self._on_node_delete)

    def _on_node(self, node: Obj) -> None:
        if not node_cidrs(node):
            self.enqueue(name_of(node))

    def _on_node_delete(self, node: Obj) -> None:
        self._written.pop(name_of(node), None)
        for other in self.nodes.list():  # its block is free: waiting Nodes may get one now
            self._on_node(other)

    def used(self, except_node: str) -> list[Network]:
        """Every block held by another Node (in the cache, or written by us and not yet seen)."""
        out = [c for n in self.nodes.list() if name_of(n) != except_node for c in node_cidrs(n)]
        return out + [c for name, cs in self._written.items() if name != except_node for c in cs]

    async def sync(self, key: Hashable) -> None:
        name = str(key)
        node = self.nodes.get(name)
        if node is None:
            self._written.pop(name, None)
            return  # gone
        if node_cidrs(node):
            self._written.pop(name, None)
            return  # has its CIDR (ours, or set by its agent): never changed
        used = self.used(name)
        blocks = [allocate(c, self.masks[c.version], used) for c in self.clusters]
        if any(b is None for b in blocks):
            full = [c for c, b in zip(self.clusters, blocks, strict=True) if b is None]
            await self._not_available(node, f"no free /{self.masks[full[0].version]} left in the "
                                            f"cluster CIDR {', '.join(map(str, full))}")
            return  # non-transient: looked at again when a Node goes away
        cidrs = [str(b) for b in blocks]
        self._written[name] = [b for b in blocks if b is not None]
        try:
            await self.client.patch(NODES, name, {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}})
        except errors.NotFound:
            self._written.pop(name, None)
            return
        log.info("node %s: pod CIDR %s", name, ", ".join(cidrs))

    async def _not_available(self, node: Obj, message: str) -> None:
        name = name_of(node)
        log.warning("node %s: %s", name, message)
        if self.recorder is not None:
            self.recorder.event(node, WARNING, "CIDRNotAvailable",
                                f"Node {name} status is now: CIDRNotAvailable")
        conditions: list[Any] = [c for c in (node.get("status") or {}).get("conditions") or []
                                 if c.get("type") != "NetworkUnavailable"]
        now = now_rfc3339()
        conditions.append({"type": "NetworkUnavailable", "status": "True", "reason": "CIDRNotAvailable",
                           "message": message, "lastTransitionTime": now, "lastHeartbeatTime": now})
        try:
            await self.client.patch(NODES, name, {"status": {"conditions": conditions}}, subresource="status")
        except errors.NotFound:
            return
