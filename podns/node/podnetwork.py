"""The node's pod network in namespace mode: bridge, DNS relay, pod namespaces, mount points.

`PodNetwork` is what the agent holds when it runs with `--pod-network netns`: `start()` removes
what a crashed agent left (`netns.cleanup_leftovers`), creates the bridge and starts the DNS relay
on the gateway address; `add_pod`/`remove_pod` give a pod its namespace (and take it away);
`stop()` removes every namespace, the bridge and the relay, so nothing of the node's network
outlives the agent (the pods keep their IPAM addresses for the next start).

It also owns the mount points: a container's `mountPath` that does not exist on the host has to be
created there to mount on (a mount namespace shares the file system). `mountpoints.MountPoints`
counts them per pod and removes one (only if podns created it and it is still empty) once no pod
on the machine uses it, whichever cluster's; `<data-dir>/mountpoints.json` lets a restarted agent
remove what a crashed one used. Paths that already existed are never touched.

Blocking `ip` calls run in a worker thread; errors are `netns.NetnsError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from podns.node import netns
from podns.node.dnsrelay import DNSRelay
from podns.node.mountpoints import MountPoints
from podns.node.sandbox import Mount

log = logging.getLogger(__name__)
Obj = dict[str, Any]

#: the relay listens where resolv.conf says a nameserver is: port 53 (a resolver has no port knob)
DNS_PORT = 53


class PodNetwork:
    """See the module docstring. `cluster_dns` is where the relay forwards; `zone` the cluster
    domain of the pods' search path; `state_dir` the agent's data dir; `cidr6` the IPv6 pod CIDR
    of a dual-stack node (pods then get an address of each family)."""

    def __init__(self, cidr: str, *, cluster_dns: tuple[str, int], zone: str, state_dir: Path,
                 dns_port: int = DNS_PORT, cidr6: str | None = None) -> None:
        net = ipaddress.ip_network(cidr, strict=False)
        self.cidr = str(net)
        self.cidr6 = str(ipaddress.ip_network(cidr6, strict=False)) if cidr6 else None
        self.bridge = netns.bridge_name(self.cidr)
        self.gateway = str(net.network_address + 1)
        self.cluster_dns = cluster_dns
        self.zone = zone
        self.dns_port = dns_port
        self.relay: DNSRelay | None = None
        self.pods: dict[str, str] = {}  # uid -> namespace name
        #: set-ups still running in a thread (a cancelled add_pod does not stop the thread)
        self._pending: dict[str, asyncio.Future[str]] = {}
        self.mount_points = MountPoints(state_dir / "mountpoints.json")

    # -- node --------------------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Clean up leftovers, create the bridge, start the relay; return the leftovers removed."""
        removed = await asyncio.to_thread(netns.cleanup_leftovers, self.cidr)
        await asyncio.to_thread(self.mount_points.start)
        await asyncio.to_thread(netns.ensure_bridge, self.cidr, self.cidr6)
        self.relay = DNSRelay((self.gateway, self.dns_port), self.cluster_dns)
        try:
            await self.relay.start()
        except OSError as exc:
            await asyncio.to_thread(netns.delete_bridge, self.bridge)
            why = exc.strerror or exc
            raise netns.NetnsError(f"DNS relay on {self.gateway}:{self.dns_port}: {why}") from exc
        return removed

    async def stop(self) -> None:
        """Remove every pod namespace, the relay, the bridge and the mount points we created."""
        if self.relay is not None:
            await self.relay.stop()
        for uid in set(self.pods) | set(self._pending):
            await self.remove_pod(uid)
        await asyncio.to_thread(netns.delete_bridge, self.bridge)
        await asyncio.to_thread(self.mount_points.stop)
        with contextlib.suppress(OSError):
            netns.ETC_NETNS.rmdir()  # created for our pods' resolv.conf; kept if anyone else uses it

    # -- pods --------------------------------------------------------------------------------------

    async def add_pod(self, pod: Obj, pod_ip: str, pod_ip6: str | None = None) -> str:
        """Give the pod (`metadata.uid`) its namespace with `pod_ip` (and `pod_ip6` of the IPv6
        pod CIDR, dual-stack); return the namespace's path."""
        uid = str(pod.get("metadata", {}).get("uid", ""))
        resolv = netns.resolv_conf(pod, nameserver=self.gateway, zone=self.zone)
        hosts = netns.hosts_file(pod, pod_ip=pod_ip, zone=self.zone, pod_ip6=pod_ip6)
        fut = asyncio.ensure_future(asyncio.to_thread(
            netns.create_pod_network, uid, cidr=self.cidr, bridge=self.bridge, pod_ip=pod_ip,
            resolv=resolv, hosts=hosts, pod_ip6=pod_ip6, cidr6=self.cidr6))
        self._pending[uid] = fut
        try:
            name = await asyncio.shield(fut)
        finally:
            if fut.done() and self._pending.get(uid) is fut:
                del self._pending[uid]
        self.pods[uid] = name
        return str(netns.NETNS_RUN / name)

    def resolv_path(self, uid: str) -> str:
        return str(netns.ETC_NETNS / netns.netns_name(uid) / "resolv.conf")

    def hosts_path(self, uid: str) -> str:
        """The pod's /etc/hosts ("" when there is none: the container keeps the host's)."""
        path = netns.ETC_NETNS / netns.netns_name(uid) / "hosts"
        return str(path) if path.exists() else ""

    async def remove_pod(self, uid: str) -> None:
        """Take the pod's namespace, veth and resolv.conf away, and mount points it alone used."""
        self.pods.pop(uid, None)
        pending = self._pending.pop(uid, None)
        if pending is not None:
            with contextlib.suppress(Exception):
                await pending  # let a set-up in flight finish, then undo it
        await asyncio.to_thread(netns.delete_pod_network, uid)
        await asyncio.to_thread(self.mount_points.release, uid)

    # -- mount points ------------------------------------------------------------------------------

    def ensure_mount_points(self, uid: str, mounts: Iterable[Mount]) -> None:
        """Create the missing targets of `mounts` on the host (directories, or an empty file for a
        file source); count pod `uid` as a user of each. Raises OSError."""
        self.mount_points.ensure(uid, mounts)
