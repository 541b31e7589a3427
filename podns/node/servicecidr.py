"""The cluster's service CIDR as a node agent sees it: learned from the API, checked against the
node's pod network mode, and claimed machine-wide against other clusters.

Learning: the API server owns `--service-cidr` (it allocates the ClusterIPs); it writes the range
on Service `default/kubernetes` (annotation `podns.io/service-cidr`, see
`podns.api.handlers.kubernetesservice`), and an agent started without `--service-cidr` reads it
there (`learn`), as kube-proxy reads the ServiceCIDR objects of Kubernetes 1.33.

Checking (`unusable_reason`): namespace mode NATs ClusterIPs in the kernel, which a loopback
range defeats (inside a pod's namespace 127.x is the pod's own `lo`); the agent reports that (log
and a Node Event) instead of leaving pods to time out.

Claiming (`ServiceCIDRClaim`): two clusters on one machine whose service CIDRs overlap would both
DNAT the same ClusterIPs (10.96.0.1 first of all) in the host's own output path, each capturing
the other's connections. An agent serving a range with kernel NAT holds a shared flock on
`<lock dir>/svc-<cluster id>-<cidr>.lock`; a held file of another cluster id whose range overlaps
is a conflict (`ServiceCIDRConflict`), and the agent refuses to start, naming the flag to change.
A pod CIDR an agent here holds (`podns.node.ipam.CIDRClaim`) that overlaps is a conflict too:
the range's NAT would take those pods' addresses for ClusterIPs. Agents of one cluster (same CA)
share a claim. A crashed agent's claim goes with its process (the kernel drops the flock). The
check and the claim are one step under the lock dir's mutex (`ipam.claims_locked`): of two
clusters starting at the very same moment, the second refuses, never both.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import os
import re
from collections.abc import Sequence
from typing import Any

from podns.node.ipam import claim_held, claimed_ranges, claims_locked, lock_name
from podns.objects import cidrs
from podns.objects.wellknown import SERVICE_CIDR_ANNOTATION

Obj = dict[str, Any]
#: the range `podns up --pod-network netns` gives the API server when none is asked for
#: (Kubernetes' kubeadm default is 10.96.0.0/12; a /16 leaves room for a second cluster beside it)
NETNS_SERVICE_CIDR = "10.96.0.0/16"
_CLAIM = re.compile(r"svc-([0-9a-f]+)-(.+)\.lock")


class ServiceCIDRConflict(Exception):
    """Another cluster's agent on this machine NATs an overlapping service range (one line)."""


def from_kubernetes_service(service: Obj | None) -> str | None:
    """The service CIDR written on Service default/kubernetes (canonical comma-separated list);
    None when the Service or its annotation is missing or unreadable."""
    annotations = ((service or {}).get("metadata") or {}).get("annotations") or {}
    text = annotations.get(SERVICE_CIDR_ANNOTATION)
    if not isinstance(text, str):
        return None
    try:
        return cidrs.format_cidrs(cidrs.parse_cidrs(text))
    except ValueError:
        return None


def unusable_reason(service_cidrs: list[str], pod_network: str) -> str | None:
    """Why pods of a `pod_network` node cannot reach ClusterIPs of `service_cidrs` (None: they
    can). Namespace mode needs ranges off loopback; loopback mode's userspace proxy needs
    loopback ones (it listens on each cluster IP)."""
    for text in service_cidrs:
        net = ipaddress.ip_network(text, strict=False)
        if pod_network == "netns" and net.is_loopback:
            return (f"the cluster's service CIDR {text} is a loopback range: in namespace mode a "
                    "pod's 127.x is its own lo, so pods cannot reach ClusterIPs (the host still "
                    "can, through the userspace proxy); start the API server with "
                    f"--service-cidr {NETNS_SERVICE_CIDR} (podns up --pod-network netns does)")
        if pod_network != "netns" and not net.is_loopback:
            return (f"the cluster's service CIDR {text} is off loopback: a loopback-mode node "
                    "serves ClusterIPs by listening on them, so only 127.x ranges work here "
                    "(run the node with --pod-network netns, as root, for kernel NAT)")
    return None


def cluster_id(ca_data: bytes | None, server: str) -> str:
    """A machine-local name of the cluster: a hash of its CA (every agent of a cluster trusts
    the same one), or of the API server's URL without one."""
    return hashlib.sha256(ca_data or server.encode()).hexdigest()[:16]


def _file_name(cluster: str, cidr: str) -> str:
    return f"svc-{cluster}-{cidr.replace('/', '_')}.lock"


class ServiceCIDRClaim:
    """This agent's machine-wide claim on the service ranges it NATs (see the module docstring)."""

    def __init__(self) -> None:
        self._fds: list[int] = []

    def claim(self, cluster: str, ranges: list[str], *, flag: str, pod_cidrs: Sequence[str] = ()) -> None:
        """Hold a shared claim on each of `ranges` for `cluster`; ServiceCIDRConflict (claims
        released) when another cluster's live agent here holds an overlapping service range, or
        a live agent here holds an overlapping pod CIDR (its pods' addresses would be taken for
        ClusterIPs), other than this agent's own `pod_cidrs` (which it must not overlap either).
        `flag`: what the message tells the
        user to change. Checked and taken under the lock dir's mutex, so of two clusters
        starting at once the second sees the first. LockDirError as `lock_dir`."""
        mine = [ipaddress.ip_network(r, strict=False) for r in ranges]
        for pod in (ipaddress.ip_network(c, strict=False) for c in pod_cidrs):
            clash = next((n for n in mine if n.version == pod.version and n.overlaps(pod)), None)
            if clash is not None:  # its NAT would reject connections to this node's own pods
                raise ServiceCIDRConflict(f"service CIDR {clash} overlaps this node's pod CIDR {pod} "
                                          f"(ClusterIPs and pod IPs must not share addresses): pass "
                                          f"another {flag}, e.g. {_suggest(mine, pod)}")
        with claims_locked() as directory:
            for net in mine:
                fd = os.open(directory / _file_name(cluster, str(net)),
                             os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                fcntl.flock(fd, fcntl.LOCK_SH)  # only an exclusive probe ever waits on it: never long
                self._fds.append(fd)
            own = {directory / lock_name(c) for c in pod_cidrs}
            for theirs, path, service in claimed_ranges(directory):
                m = _CLAIM.fullmatch(path.name)
                if path in own or (m is not None and m.group(1) == cluster):
                    continue
                clash = next((n for n in mine if n.version == theirs.version and n.overlaps(theirs)), None)
                if clash is not None and claim_held(path, shared=service):
                    self.release()
                    raise ServiceCIDRConflict(
                        f"service CIDR {clash} overlaps {theirs}, whose ClusterIPs a node agent of another "
                        f"podns cluster on this machine already NATs (both would capture this host's "
                        f"connections to them): pass another {flag}, e.g. {_suggest(mine, theirs)}"
                        if service else
                        f"service CIDR {clash} overlaps pod CIDR {theirs}, whose pods a node agent on this "
                        f"machine runs (their addresses would be taken for ClusterIPs): pass another "
                        f"{flag}, e.g. {_suggest(mine, theirs)}")

    def release(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()


def _suggest(mine: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
             theirs: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A range of the same size as the clashing one of `mine`, just above `theirs`."""
    net = next(n for n in mine if n.version == theirs.version)
    base = int(theirs.broadcast_address) + 1
    size = net.num_addresses
    start = (base + size - 1) // size * size
    try:
        return str(type(net)((start, net.prefixlen)))
    except ValueError:
        return "a range no other cluster here uses"
