"""The kernel NAT proxier: keeps the node's nftables table equal to the cluster's Services.

Netns mode's ClusterIP path (kube-proxy's nftables mode, for podns): Services and EndpointSlices
come from informers (list + watch through the REST API, nothing else); any change marks the
state dirty, and one loop turns the informer caches into Service ports
(`serviceports.service_ports`), renders the whole table (`nftables.render`) and applies it with
one `nft -f` (`nft.apply`): one transaction per sync, so the kernel never holds half a table.
Changes that arrive within `MIN_SYNC_INTERVAL` of each other share one sync.

What it owns: the table `ip <table>` (the node's bridge name, `podns-<hex of the pod CIDR>`,
so several agents on one machine never share one) and, for dual-stack nodes, `ip6 <table>`;
and forwarding on that bridge only (a pod's packet to a ClusterIP is routed back out once
DNATed; the machine-wide switches are never touched: IPv4 `forwarding` on the bridge, IPv6
`force_forwarding` on the bridge, Linux 6.17+, unless the machine already forwards IPv6). Both
families' tables are written by the same `nft -f`. `stop()` deletes the tables.

Failure contract:
- nft refuses a script (`NftError`): nothing was applied (transaction); the error is logged,
  recorded as a Warning Event `FailedToSyncRules` on the Node and kept in `last_error`, and the
  sync is retried with back-off (0.5 s doubling to 30 s) while the old table keeps serving;
- nft is missing (`NftMissing`): the same, with reason `NftMissing`; the agent checks for it
  before starting and says so at once (see `Agent.start`);
- a Service whose cluster IP is outside the service CIDR gets no rules and one Warning Event
  `ClusterIPNotInServiceCIDR` on the Service (per cluster IP, per agent run).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podns.kube.client import Client
from podns.kube.events import EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import ENDPOINTSLICES, SERVICES
from podns.node.proxy import nft
from podns.node.proxy.nftables import render
from podns.node.proxy.serviceports import ServicePort, cluster_ips, service_ports
from podns.objects import join_key, object_key
from podns.objects.wellknown import SERVICE_NAME_LABEL

log = logging.getLogger(__name__)
Obj = dict[str, Any]

#: seconds; changes closer together than this share one `nft -f` (kube-proxy's minSyncPeriod is
#: 1 s; podns keeps it short so that a pod leaving is out of the rules within tens of ms)
MIN_SYNC_INTERVAL = 0.05
#: seconds between retries of a failed sync: first and cap
RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
FORWARDING = "/proc/sys/net/ipv4/conf/{}/forwarding"
FORWARDING6 = "/proc/sys/net/ipv6/conf/{}/force_forwarding"
FORWARDING6_ALL = "/proc/sys/net/ipv6/conf/all/forwarding"


class NftProxier:
    """See the module docstring. `table`: the nft table's name; `pod_ifname`: the node's pod
    bridge; `service_cidrs`: the cluster's service ranges (cluster IPs outside them get no
    rules; empty: no check); `families`: 4 and/or 6, each with a table of its own; `node`: the
    Node the events are about; `binary`: the command running nft (None: the installed one)."""

    def __init__(self, client: Client, *, node: str, table: str, pod_ifname: str,
                 service_cidrs: list[str], families: Sequence[int] = (4,),
                 binary: Sequence[str] | None = None) -> None:
        self.client = client
        self.node = node
        self.table = table
        self.pod_ifname = pod_ifname
        self.service_cidrs = [ipaddress.ip_network(c, strict=False) for c in service_cidrs]
        #: the address families served: 4 (table `ip <table>`) and/or 6 (`ip6 <table>`)
        self.families = tuple(families)
        self.binary = binary
        self.services = Informer(client, SERVICES, name="nft-proxy:services")
        self.slices = Informer(client, ENDPOINTSLICES, name="nft-proxy:endpointslices")
        self.slices.add_index("service", lambda s: [join_key(
            str((s.get("metadata") or {}).get("namespace") or ""),
            str(((s.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL) or ""))])
        self.events = EventRecorder(client, "podns-proxy", host=node)
        #: successful syncs, and the last failure's message (None after a success)
        self.syncs = 0
        self.last_error: str | None = None
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reported: set[tuple[str, str]] = set()

    # -- start / stop --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching and syncing; returns after the first sync was tried (its failure is
        in `last_error` and is retried)."""
        await asyncio.to_thread(self._enable_forwarding)
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=lambda _o: self._dirty.set(),
                                 on_update=lambda _o, _n: self._dirty.set(),
                                 on_delete=lambda _o: self._dirty.set())
            informer.start()
        await self.services.wait_synced()
        await self.slices.wait_synced()
        await self._sync_or_report()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"nft-proxy:{self.table}")

    async def stop(self) -> None:
        """Stop syncing and delete the table (connections already NATed keep their conntrack
        entries until they end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.services.stop()
        await self.slices.stop()
        for family in self.families:
            try:
                await nft.delete_table(self.table, family, binary=self.binary)
            except nft.NftError as exc:
                log.warning("node %s: removing nft table %s: %s", self.node, self.table, exc)
        await self.events.stop()

    def _enable_forwarding(self) -> None:
        """Forwarding on the pod bridge alone. IPv4 has a per-interface switch; IPv6 forwards
        only with the machine-wide one or, per interface, `force_forwarding` (Linux 6.17+)."""
        paths = {4: Path(FORWARDING.format(self.pod_ifname)),
                 6: Path(FORWARDING6.format(self.pod_ifname))}
        for family in self.families:
            path = paths[family]
            try:
                if family == 6 and Path(FORWARDING6_ALL).read_text().strip() == "1":
                    continue  # the machine forwards IPv6 already
                if path.read_text().strip() != "1":
                    path.write_text("1\n")
            except OSError as exc:
                log.warning("node %s: cannot enable IPv%d forwarding on %s (%s): pods will not reach "
                            "IPv%d ClusterIPs", self.node, family, self.pod_ifname, exc, family)

    # -- the sync loop ---------------------------------------------------------------------------

    async def _loop(self) -> None:
        delay = RETRY_INITIAL
        while True:
            await self._dirty.wait()
            await asyncio.sleep(MIN_SYNC_INTERVAL)
            if await self._sync_or_report():
                delay = RETRY_INITIAL
                continue
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
            self._dirty.set()

    async def _sync_or_report(self) -> bool:
        """One sync; False (and the error logged, evented, kept) when it failed."""
        self._dirty.clear()
        try:
            await self.sync()
        except nft.NftError as exc:
            reason = "NftMissing" if isinstance(exc, nft.NftMissing) else "FailedToSyncRules"
            if str(exc) != self.last_error:
                log.error("node %s: ClusterIP rules not applied (table %s kept as it was): %s",
                          self.node, self.table, exc)
            self.last_error = str(exc)
            self.events.event({"kind": "Node", "apiVersion": "v1",
                               "metadata": {"name": self.node, "uid": self.node}},
                              "Warning", reason, f"ClusterIP rules (nft table {self.table}): {exc}")
            return False
        self.last_error = None
        return True

    async def sync(self) -> None:
        """Render the table of every family from the caches and apply them in one transaction.
        Raises NftError."""
        script = ""
        for family in self.families:
            script += render(self.ports(family), table=self.table, family=family,
                             pod_ifname=self.pod_ifname, service_cidrs=[str(c) for c in self.service_cidrs],
                             existing=await nft.table_state(self.table, family, binary=self.binary))
        await nft.apply(script, binary=self.binary)
        self.syncs += 1

    def ports(self, family: int = 4) -> list[ServicePort]:
        """Every Service port with a cluster IP of `family` inside the service CIDR, and its
        endpoints of that family."""
        out: list[ServicePort] = []
        for svc in self.services.list():
            if not self._in_range(svc):
                continue
            key = object_key(svc)
            out += service_ports(svc, self.slices.by_index("service", key), family=family)
        return out

    def _in_range(self, svc: Obj) -> bool:
        """False (after one Warning Event per cluster IP) when a cluster IP of `svc` is outside
        every service CIDR: its rules could capture traffic for some other network."""
        if not self.service_cidrs:
            return True
        for ip in cluster_ips(svc):
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                addr = None
            if addr is not None:
                ranges = [net for net in self.service_cidrs if net.version == addr.version]
                if not ranges or any(addr in net for net in ranges):
                    continue  # inside, or another family's address: not this proxier's to judge
            seen = (str((svc.get("metadata") or {}).get("uid") or object_key(svc)), ip)
            if seen not in self._reported:
                self._reported.add(seen)
                cidrs = ", ".join(str(c) for c in self.service_cidrs)
                log.warning("node %s: Service %s: cluster IP %s is outside the service CIDR %s; "
                            "no rules for it", self.node, object_key(svc), ip, cidrs)
                self.events.event({"kind": "Service", "apiVersion": "v1", **svc}, "Warning",
                                  "ClusterIPNotInServiceCIDR",
                                  f"cluster IP {ip} is outside the service CIDR {cidrs}: node "
                                  f"{self.node} writes no rules for it")
            return False
        return True
