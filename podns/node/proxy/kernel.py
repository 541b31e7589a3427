"""The kernel NAT proxier: keeps the node's NAT rules (nftables, or iptables where nft is missing)
equal to the cluster's Services.

Netns mode's ClusterIP path (kube-proxy's nftables and iptables modes, for podns): Services and
EndpointSlices come from informers (list + watch through the REST API, nothing else); any change
marks the state dirty, and one loop turns the informer caches into Service ports
(`serviceports.service_ports`, the one model both backends render) and hands them to the
backend (`Rules`), which rewrites all of the node's rules in one go: `NftRules` renders the
tables (`nftables.render`) and applies them with one `nft -f` (`nft.apply`); `IptablesRules`
renders the node's chains (`iptables.render`) and applies them per family with one
`iptables-restore --noflush` (`ipt.apply`; each table's block is one transaction). Changes that
arrive within `MIN_SYNC_INTERVAL` of each other share one sync. `choose_mode` resolves
`--proxy-mode auto`.

What it owns: nftables mode, the table `ip <table>` (the node's bridge name, `podns-<hex of the
pod CIDR>`, so several agents on one machine never share one) and, for dual-stack nodes,
`ip6 <table>`; iptables mode, the chains `PODNS-<hex>-*` of the nat and filter tables and the
jumps to them from the built-in chains (never flushed: they are the machine's); and in both,
forwarding on that bridge only (a pod's packet to a ClusterIP is routed back out once DNATed;
the machine-wide switches are never touched: IPv4 `forwarding` on the bridge, IPv6
`force_forwarding` on the bridge, Linux 6.17+, unless the machine already forwards IPv6).
`stop()` deletes the tables or chains.

Failure contract:
- the backend's tool refuses (`tools.RulesError`): nothing was applied (transaction); the error
  is logged, recorded as a Warning Event `FailedToSyncRules` on the Node and kept in
  `last_error`, and the sync is retried with back-off (0.5 s doubling to 30 s) while the old
  rules keep serving;
- the tool is missing (`tools.RulesToolMissing`): the same, with reason `NftMissing` or
  `IptablesMissing`; the agent checks for it before starting and says so at once (see
  `Agent._kernel_nat_ranges`);
- a Service whose cluster IP is outside the service CIDR gets no rules and one Warning Event
  `ClusterIPNotInServiceCIDR` on the Service (per cluster IP, per agent run).

After each applied sync the health check node ports of LoadBalancers with
`externalTrafficPolicy: Local` answer how many endpoints this node has (`healthcheck.py`, on
every address, as kube-proxy; a port that cannot be bound: a log line and a Warning Event
`FailedToStartServiceHealthcheck` on the Service, nothing else).

After each applied sync (either backend), the UDP conntrack entries it made stale (an endpoint
gone from a UDP Service port, the port gone) are deleted (`conntrack.py`, as kube-proxy); a
missing `conntrack` is logged and evented once (`ConntrackMissing`, also at start), a failed
delete logged: neither fails or retries the sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from podns.kube.client import Client
from podns.kube.events import EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import ENDPOINTSLICES, SERVICES
from podns.node.proxy import conntrack, ipt, nft, nftables
from podns.node.proxy import iptables as iptables_rules
from podns.node.proxy.healthcheck import HealthReporter, HealthServer, health_checks
from podns.node.proxy.serviceports import ServicePort, cluster_ips, service_ports
from podns.node.proxy.tools import RulesError, RulesToolMissing
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
#: iptables mode's IPv4 localhost NodePorts: a connection from 127.0.0.1, DNATed to a pod, leaves
#: (and its replies arrive) through the bridge with a loopback address (kube-proxy sets it on all)
ROUTE_LOCALNET = "/proc/sys/net/ipv4/conf/{}/route_localnet"


#: the values of `--proxy-mode`; `auto` is resolved by `choose_mode`
PROXY_MODES = ("auto", "nftables", "iptables", "userspace")
#: seconds `choose_mode` gives `nft list tables` to answer
PROBE_TIMEOUT = 10.0


def choose_mode(requested: str) -> tuple[str | None, str]:
    """The kernel backend for `--proxy-mode requested` and why: `auto` is nftables when `nft`
    is installed and answers, else iptables when `iptables-restore` is installed (kube-proxy's
    own order); an explicit mode is taken when its tool is installed. (None, why) when the mode
    needs a tool that is missing; ("userspace", why) for userspace."""
    if requested == "userspace":
        return "userspace", "--proxy-mode userspace"
    nft_found = nft.nft_path()
    if requested in ("auto", "nftables") and nft_found is not None:
        if requested == "nftables":
            return "nftables", "--proxy-mode nftables"
        try:
            probe = subprocess.run([nft_found, "list", "tables"], capture_output=True, text=True,
                                   timeout=PROBE_TIMEOUT)
            if probe.returncode == 0:
                return "nftables", f"nft works ({nft_found})"
            why_nft = f"{nft_found} list tables failed: {probe.stderr.strip()}"
        except (OSError, subprocess.TimeoutExpired) as exc:
            why_nft = f"cannot run {nft_found}: {exc}"
    else:
        why_nft = "nft is not installed (Debian package nftables)"
    if requested == "nftables":
        return None, why_nft
    found = ipt.iptables_path()
    if found is not None:
        return "iptables", (f"{why_nft}; using {found}" if requested == "auto"
                            else "--proxy-mode iptables")
    why_ipt = "iptables-restore is not installed (Debian package iptables)"
    return None, why_ipt if requested == "iptables" else f"{why_nft}, and {why_ipt}"


class Rules(Protocol):
    """A kernel NAT backend: writes all of a node's rules from its Service ports at once."""

    #: `nftables` or `iptables`
    mode: str

    def describe(self) -> str:
        """What the messages call the rules (`nft table podns-...`)."""
        ...

    async def sync(self, ports: Mapping[int, Sequence[ServicePort]], *, pod_ifname: str,
                   service_cidrs: Sequence[str]) -> None:
        """Make the rules of each family of `ports` serve exactly its ports. Raises RulesError
        (nothing of that family applied)."""
        ...

    async def delete(self, families: Sequence[int]) -> None:
        """Remove the rules of `families`. Raises RulesError."""
        ...


class NftRules:
    """nftables mode: the tables `ip <table>` and `ip6 <table>`, both written by one `nft -f`.
    `binary`: the command running nft (None: the installed one)."""

    mode = "nftables"

    def __init__(self, table: str, binary: Sequence[str] | None = None) -> None:
        self.table = table
        self.binary = binary

    def describe(self) -> str:
        return f"nft table {self.table}"

    async def sync(self, ports: Mapping[int, Sequence[ServicePort]], *, pod_ifname: str,
                   service_cidrs: Sequence[str]) -> None:
        script = ""
        for family, family_ports in ports.items():
            script += nftables.render(
                family_ports, table=self.table, family=family, pod_ifname=pod_ifname,
                service_cidrs=service_cidrs,
                existing=await nft.table_state(self.table, family, binary=self.binary))
        await nft.apply(script, binary=self.binary)

    async def delete(self, families: Sequence[int]) -> None:
        for family in families:
            await nft.delete_table(self.table, family, binary=self.binary)


class IptablesRules:
    """iptables mode: the chains `<prefix>-*` (`iptables.prefix_of` the bridge name), one
    `iptables-restore --noflush` per family. `wrapper`: a command prefix for the tools (tests:
    `ip netns exec NS`)."""

    mode = "iptables"

    def __init__(self, prefix: str, wrapper: Sequence[str] = ()) -> None:
        self.prefix = prefix
        self.wrapper = tuple(wrapper)

    def describe(self) -> str:
        return f"iptables chains {self.prefix}-*"

    async def sync(self, ports: Mapping[int, Sequence[ServicePort]], *, pod_ifname: str,
                   service_cidrs: Sequence[str]) -> None:
        for family, family_ports in ports.items():
            existing = await ipt.saved(self.prefix, family, wrapper=self.wrapper)
            await ipt.apply(iptables_rules.render(
                family_ports, prefix=self.prefix, family=family, pod_ifname=pod_ifname,
                service_cidrs=service_cidrs, existing=existing), family, wrapper=self.wrapper)

    async def delete(self, families: Sequence[int]) -> None:
        for family in families:
            await ipt.delete(self.prefix, family, wrapper=self.wrapper)


class KernelProxier:
    """See the module docstring. `rules`: the backend; `pod_ifname`: the node's pod bridge;
    `service_cidrs`: the cluster's service ranges (cluster IPs outside them get no rules; empty:
    no check); `families`: 4 and/or 6; `node`: the Node the events are about;
    `conntrack_binary`: the command running conntrack (None: the installed one)."""

    def __init__(self, client: Client, *, node: str, rules: Rules, pod_ifname: str,
                 service_cidrs: list[str], families: Sequence[int] = (4,),
                 conntrack_binary: Sequence[str] | None = None) -> None:
        self.client = client
        self.node = node
        self.rules = rules
        self.pod_ifname = pod_ifname
        self.service_cidrs = [ipaddress.ip_network(c, strict=False) for c in service_cidrs]
        #: the address families served: 4 and/or 6
        self.families = tuple(families)
        self.services = Informer(client, SERVICES, name=f"{rules.mode}-proxy:services")
        self.slices = Informer(client, ENDPOINTSLICES, name=f"{rules.mode}-proxy:endpointslices")
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
        self.conntrack_binary = conntrack_binary
        #: the UDP Service ports of the last applied sync (None before the first)
        self._udp: conntrack.UdpState | None = None
        self._conntrack_missing_said = False
        #: health check node ports, on every address of the machine (kube-proxy's default)
        self.health = HealthServer(on_unbindable=HealthReporter(self.events, node, self.services.get))

    # -- start / stop --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching and syncing; returns after the first sync was tried (its failure is
        in `last_error` and is retried)."""
        await asyncio.to_thread(self._enable_forwarding)
        if self.conntrack_binary is None and conntrack.conntrack_path() is None:
            self._say_conntrack_missing(conntrack.ConntrackMissing(conntrack.MISSING))
        for informer in (self.services, self.slices):
            informer.add_handler(on_add=lambda _o: self._dirty.set(),
                                 on_update=lambda _o, _n: self._dirty.set(),
                                 on_delete=lambda _o: self._dirty.set())
            informer.start()
        await self.services.wait_synced()
        await self.slices.wait_synced()
        await self._sync_or_report()
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"{self.rules.mode}-proxy:{self.rules.describe()}")

    async def stop(self) -> None:
        """Stop syncing and delete the rules (connections already NATed keep their conntrack
        entries until they end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.services.stop()
        await self.slices.stop()
        await self.health.stop()
        try:
            await self.rules.delete(self.families)
        except RulesError as exc:
            log.warning("node %s: removing %s: %s", self.node, self.rules.describe(), exc)
        await self.events.stop()

    def _enable_forwarding(self) -> None:
        """Forwarding on the pod bridge alone. IPv4 has a per-interface switch; IPv6 forwards
        only with the machine-wide one or, per interface, `force_forwarding` (Linux 6.17+). In
        iptables mode also `route_localnet` on the bridge (IPv4 localhost NodePorts; the
        filter rules drop what else it would let in: `iptables.render`)."""
        if self.rules.mode == "iptables" and 4 in self.families:
            try:
                Path(ROUTE_LOCALNET.format(self.pod_ifname)).write_text("1\n")
            except OSError as exc:
                log.warning("node %s: cannot enable route_localnet on %s (%s): 127.0.0.1:<nodePort> "
                            "will not reach pods", self.node, self.pod_ifname, exc)
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
        except RulesError as exc:
            reason = type(exc).__name__ if isinstance(exc, RulesToolMissing) else "FailedToSyncRules"
            if str(exc) != self.last_error:
                log.error("node %s: ClusterIP rules not applied (%s kept as they were): %s",
                          self.node, self.rules.describe(), exc)
            self.last_error = str(exc)
            self.events.event({"kind": "Node", "apiVersion": "v1",
                               "metadata": {"name": self.node, "uid": self.node}},
                              "Warning", reason, f"ClusterIP rules ({self.rules.describe()}): {exc}")
            return False
        self.last_error = None
        return True

    async def sync(self) -> None:
        """Hand every family's Service ports to the backend, then delete the UDP conntrack
        entries the change made stale. Raises RulesError (nothing deleted then)."""
        ports = {family: self.ports(family) for family in self.families}
        await self.rules.sync(ports, pod_ifname=self.pod_ifname,
                              service_cidrs=[str(c) for c in self.service_cidrs])
        self.syncs += 1
        udp = conntrack.udp_state(sp for family_ports in ports.values() for sp in family_ports)
        stale = conntrack.stale_flows(self._udp, udp) if self._udp is not None else []
        self._udp = udp
        try:
            await conntrack.flush(stale, binary=self.conntrack_binary)
        except conntrack.ConntrackMissing as exc:
            self._say_conntrack_missing(exc)
        except conntrack.ConntrackError as exc:
            log.warning("node %s: deleting stale UDP conntrack entries: %s", self.node, exc)
        await self.health.sync(health_checks(
            self.services.list(), lambda svc: self.slices.by_index("service", object_key(svc)), self.node))

    def _say_conntrack_missing(self, exc: conntrack.ConntrackMissing) -> None:
        """Log and event a missing `conntrack`, once per proxier."""
        if self._conntrack_missing_said:
            return
        self._conntrack_missing_said = True
        log.error("node %s: %s", self.node, exc)
        self.events.event({"kind": "Node", "apiVersion": "v1",
                           "metadata": {"name": self.node, "uid": self.node}},
                          "Warning", "ConntrackMissing", str(exc))

    def ports(self, family: int = 4) -> list[ServicePort]:
        """Every Service port with a cluster IP of `family` inside the service CIDR, and its
        endpoints of that family."""
        out: list[ServicePort] = []
        for svc in self.services.list():
            if not self._in_range(svc):
                continue
            key = object_key(svc)
            out += service_ports(svc, self.slices.by_index("service", key), family=family, node=self.node)
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


class NftProxier(KernelProxier):
    """The kernel proxier in nftables mode (`NftRules`). `table`: the nft table's name;
    `binary`: the command running nft (None: the installed one); `conntrack_binary` likewise
    for conntrack (tests running nft in a namespace of their own run conntrack there too)."""

    rules: NftRules

    def __init__(self, client: Client, *, node: str, table: str, pod_ifname: str,
                 service_cidrs: list[str], families: Sequence[int] = (4,),
                 binary: Sequence[str] | None = None,
                 conntrack_binary: Sequence[str] | None = None) -> None:
        super().__init__(client, node=node, rules=NftRules(table, binary), pod_ifname=pod_ifname,
                         service_cidrs=service_cidrs, families=families,
                         conntrack_binary=conntrack_binary)

    @property
    def table(self) -> str:
        return self.rules.table

    @property
    def binary(self) -> Sequence[str] | None:
        return self.rules.binary

    @binary.setter
    def binary(self, value: Sequence[str] | None) -> None:
        self.rules.binary = value
