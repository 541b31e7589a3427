"""The node agent: runs the pods bound to this node (podns's kubelet).

Wiring of the node's parts: a pod informer restricted to `spec.nodeName=<node>`, one
`PodWorker` per pod, a status writer per pod (a change is written at once; concurrent changes
coalesce into one patch), the event recorder, the Node/Lease heartbeat, the HTTP endpoint that
serves container logs, and (optionally) the ClusterIP proxy.

`sync(key)` is level-triggered (STYLE 2.7.1): it re-reads the pod from the informer cache and
starts, updates or terminates its worker; handlers only pass the key.

Pod networking: loopback mode (default) gives each pod its own 127.x address; namespace mode
(`pod_network="netns"`, root) gives each pod a network namespace on the node's bridge, the
node's DNS relay as its nameserver and its volumes at their mountPath (`PodNetwork`), and routes
to every other node's pod CIDR (`Routes`: host-gw or VXLAN, the Node's NetworkUnavailable).

Shutdown (`stop`) stops every pod process (SIGTERM, a short grace, SIGKILL) but leaves the pods
bound to the node; an agent started again with the same data dir kills any process a crashed
predecessor left (recorded pids), keeps the pods' addresses (persisted IPAM) and starts them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import CONFIGMAPS, NODES, PODS, RUNTIMECLASSES, SERVICEACCOUNTS, SERVICES, Resource
from podns.node import natleftovers, netns, servicecidr, volumes
from podns.node.apirelay import RELAY_HOST, ApiRelay
from podns.node.container import ContainerRunner
from podns.node.env import kubernetes_service_env
from podns.node.heartbeat import Heartbeat, choose_pod_cidr
from podns.node.ipam import IPAM, CIDRClaim
from podns.node.podnetwork import PodNetwork
from podns.node.podworker import PodWorker, SandboxError
from podns.node.proxy import KernelProxier, ServiceProxy
from podns.node.proxy.iptables import prefix_of
from podns.node.proxy.kernel import IptablesRules, NftRules, choose_mode
from podns.node.routes import Routes
from podns.node.runtime import ContainerRuntime
from podns.node.runtime.podman import PULL_TIMEOUT
from podns.node.runtime.select import Runtimes, UnavailableRuntime, UnknownHandler, runtime_version
from podns.node.server import make_app
from podns.node.streaming.handlers import PodNetwork as PodNetworkView
from podns.objects import cidrs, get_condition, join_key, name_of, namespace_of, object_key, parse_time
from podns.objects.wellknown import SERVICE_CIDR_ANNOTATION

log = logging.getLogger(__name__)
Obj = dict[str, Any]

SECRETS = Resource("", "v1", "secrets", "Secret")
#: grace given to pod processes when the agent itself stops
SHUTDOWN_GRACE = 5.0
#: grace for a pod that vanished from the API without graceful deletion (force delete)
FORCE_GRACE = 2.0
#: pause before a failed status write is retried
STATUS_RETRY = 1.0
#: netns mode: how long to wait for the control plane's pod CIDR (node IPAM) before choosing one
#: here, and how often to look (an agent of a cluster without the controller starts anyway)
CIDR_WAIT = 30.0
CIDR_POLL = 0.25


class Agent:
    """One node. `await start()`, then `await stop()`; `client` stays the caller's."""

    def __init__(
        self,
        client: Client,
        *,
        name: str,
        data_dir: Path,
        host_ip: str = "127.0.0.1",
        host_ip6: str | None = None,
        port: int = 0,
        pod_cidr: str | None = None,
        proxy: bool = False,
        pod_network: str = "loopback",
        pod_network_backend: str = "auto",
        cluster_dns: tuple[str, int] = ("127.0.0.1", 1053),
        cluster_domain: str = "cluster.local",
        serving_tls: ssl.SSLContext,
        container_runtime: str = "process",
        oci_runtime: str | None = None,
        image_pull_timeout: float = PULL_TIMEOUT,
        dual_stack: bool = False,
        service_cidr: str | None = None,
        proxy_mode: str = "auto",
    ) -> None:
        """`serving_tls`: the node endpoint's TLS settings (`podns.node.server.serving_ssl_context`:
        a certificate from the cluster CA, the API server's client certificate required).
        `container_runtime`: process, podman or auto (`podns.node.runtime.select`); `oci_runtime`
        the OCI runtime podman uses (None: the one that works); `image_pull_timeout` seconds.
        `pod_cidr`: one CIDR or an IPv4 and an IPv6 one, comma-separated, primary first (None:
        chosen in start()); `dual_stack`: in netns mode without an IPv6 pod CIDR given, give pods
        an IPv6 address too, from `netns.ipv6_companion` of the IPv4 CIDR.
        `host_ip6`: dual-stack, the node's IPv6 InternalIP beside `host_ip` (the IPv4 one).
        `service_cidr`: the cluster's ClusterIP range(s), comma-separated; in netns mode a
        range off loopback turns on kernel NAT for ClusterIPs (`podns.node.proxy.kernel`); None:
        in netns mode, learned from the cluster at start (`podns.node.servicecidr`).
        `proxy_mode`: auto, nftables, iptables or userspace (`kernel.choose_mode`); which one
        runs is `proxy_mode` after start() (None: no kernel NAT could run)."""
        self.client = client
        self.serving_tls = serving_tls
        self.node_name = name
        self.data_dir = Path(data_dir)
        self.host_ip = host_ip
        self.host_ip6 = host_ip6
        self.port = port
        given = cidrs.parse_cidrs(pod_cidr) if pod_cidr else []
        #: the IPv4 (or only) pod CIDR: claimed machine-wide, the bridge's, `status.podIP` unless
        #: the IPv6 one was given first
        v4 = [str(n) for n in given if n.version == 4]
        v6 = [str(n) for n in given if n.version == 6]
        self.pod_cidr: str | None = (v4 + v6)[0] if given else None
        #: dual-stack: the IPv6 pod CIDR (netns mode only)
        self.pod_cidr6 = v6[0] if v4 and v6 else None
        self.ipv6_primary = bool(v4 and v6) and given[0].version == 6
        self.dual_stack = dual_stack
        self.proxy_enabled = proxy
        self.proxy_mode: str | None = proxy_mode
        self.service_cidrs = [c.strip() for c in (service_cidr or "").split(",") if c.strip()]
        #: True when the range came from the cluster (the API server's --service-cidr), not a flag
        self.service_cidr_learned = False
        self.service_cidr_claim = servicecidr.ServiceCIDRClaim()
        self.pod_network = pod_network  # "loopback" or "netns"
        self.cluster_dns = cluster_dns  # netns mode: where the node's DNS relay forwards
        self.cluster_domain = cluster_domain
        self.network: PodNetwork | None = None
        #: namespace mode: the API server at 127.0.0.1:<its port> inside every pod's namespace
        self.api_relay: ApiRelay | None = None
        self.pod_network_backend = pod_network_backend  # netns mode: routes to other nodes' pods
        self.routes: Routes | None = None
        self.container_runtime = container_runtime
        #: the runtimes by RuntimeClass handler; `runtime` is the default one (chosen in start())
        #: and `runtime_reason` why it was chosen
        self.runtimes = Runtimes(pod_network=pod_network, data_dir=self.data_dir, node=name,
                                 oci_runtime=oci_runtime, pull_timeout=image_pull_timeout)
        self.runtime: ContainerRuntime = self.runtimes.default
        self.runtime_reason = "process"
        self.cidr_claim = CIDRClaim()
        #: netns mode, dual-stack: the IPv6 pod CIDR is claimed machine-wide too
        self.cidr_claim6 = CIDRClaim()
        self.ipam: IPAM = IPAM()  # replaced in start() once the CIDR is known
        self.ipam6: IPAM | None = None  # dual-stack: the IPv6 pod CIDR's allocator
        #: the Node's spec.podCIDRs as the node IPAM controller assigned them (netns mode)
        self._assigned: list[str] = []
        self.workers: dict[str, PodWorker] = {}
        self.informer: Informer | None = None
        self.events = EventRecorder(client, "kubelet", host=name)
        self.heartbeat: Heartbeat | None = None
        self.proxy: ServiceProxy | None = None
        self.nat: KernelProxier | None = None
        self._writers: dict[str, asyncio.Task[None]] = {}
        #: one-off tasks started from informer handlers (kept: the loop holds tasks only weakly)
        self._background: set[asyncio.Task[None]] = set()
        self._dirty: dict[str, asyncio.Event] = {}
        self._written: dict[str, Obj] = {}
        self._runner: web.AppRunner | None = None
        self._pids_scheduled = False
        self.status_writes = 0

    # -- start / stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # Secret volumes live there
        leftovers = await self.runtimes.start(self.container_runtime)
        self.runtime, self.runtime_reason = self.runtimes.default, self.runtimes.reason
        log.info("node %s: container runtime %s", self.node_name, self.runtime_reason)
        if leftovers:
            log.warning("node %s: removed %d container(s) left by a previous run", self.node_name,
                        leftovers)
        if self.pod_network == "netns":
            await self._learn_service_cidr()
        if self.pod_cidr is None and self.pod_network == "netns":
            self.pod_cidr = await self._assigned_cidr()
            if self.pod_cidr6 is None and self.pod_cidr in self._assigned:  # dual-stack --cluster-cidr
                self.pod_cidr6 = next((c for c in self._assigned if ":" in c), None)
        elif self.pod_cidr is None:
            nodes = (await self._retry("listing Nodes", lambda: self.client.list(NODES))).get("items") or []
            self.pod_cidr = choose_pod_cidr(nodes, self.node_name, self.cidr_claim.try_claim)
        elif not self.cidr_claim.try_claim(self.pod_cidr):
            if self.pod_network == "netns":  # its bridge and namespaces would be mistaken for ours
                raise netns.NetnsError(f"{self.cidr_claim.why}; pass another --pod-cidr")
            log.warning("node %s: %s; pods may get addresses that are taken", self.node_name,
                        self.cidr_claim.why)
        self.ipam = IPAM(self.pod_cidr, self.data_dir / "ipam.json")
        if self.pod_network == "netns" and self.pod_cidr6 is None and self.dual_stack:
            if self._assigned:  # set, so immutable: an IPv6 block cannot be added to the Node
                log.warning("node %s: the Node's pod CIDRs %s have no IPv6 block and cannot change: pods "
                            "get IPv4 addresses only (give the controller manager a dual-stack "
                            "--cluster-cidr)", self.node_name, ",".join(self._assigned))
            else:
                self.pod_cidr6 = netns.ipv6_companion(self.pod_cidr)
        if self.pod_network == "netns" and self.pod_cidr6 is not None:
            if not self.cidr_claim6.try_claim(self.pod_cidr6):  # two bridges with one IPv6 subnet
                raise netns.NetnsError(f"{self.cidr_claim6.why}; pass another --pod-cidr")
            self.ipam6 = IPAM(self.pod_cidr6, self.data_dir / "ipam6.json")
        kernel_nat = self._kernel_nat_ranges()
        if kernel_nat:
            self._claim_service_cidr(kernel_nat)
            await self._nat_leftovers(kernel_nat)
        if self.pod_network == "netns":
            self.network = PodNetwork(self.pod_cidr, cluster_dns=self.cluster_dns, zone=self.cluster_domain,
                                      state_dir=self.data_dir, cidr6=self.pod_cidr6)
            removed = await self.network.start()
            api = urllib.parse.urlsplit(self.client.server)
            if api.scheme == "https" and api.hostname:
                self.api_relay = ApiRelay((api.hostname, api.port or 443))
            if removed:
                log.warning("node %s: removed %d namespace(s)/link(s) left by a previous run: %s",
                            self.node_name, len(removed), " ".join(removed))
        app = make_app(self.find_container, self.list_pods, self.find_pod_network)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host_ip, self.port, ssl_context=self.serving_tls)
        await site.start()
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        down = self.runtime.why if isinstance(self.runtime, UnavailableRuntime) else ""
        self.heartbeat = Heartbeat(self.client, name=self.node_name, host_ip=self.host_ip,
                                   host_ip6=self.host_ip6, port=self.port,
                                   pod_cidr=self.pod_cidrs[0], pod_cidrs=self.pod_cidrs,
                                   runtime_version=runtime_version(self.runtime),
                                   runtime_down=down)
        await self._retry("registering the Node", self.heartbeat.register)
        self.heartbeat.start()
        if self.network is not None:
            self.routes = Routes(self.client, node=self.node_name, node_ip=self.host_ip, cidr=self.pod_cidr,
                                 backend=self.pod_network_backend, state_dir=self.data_dir,
                                 report=self.heartbeat.set_network, cidr6=self.pod_cidr6)
            await self.routes.start()
        self.events.start()
        self.informer = Informer(self.client, PODS, field_selector=f"spec.nodeName={self.node_name}",
                                 name=f"node:{self.node_name}:pods")
        self.informer.add_handler(
            on_add=lambda obj: self.sync(object_key(obj)),
            on_update=lambda old, new: self.sync(object_key(new)),
            on_delete=lambda obj: self.sync(object_key(obj)),
        )
        self.informer.start()
        await self.informer.wait_synced()
        live = {str(p.get("metadata", {}).get("uid", "")) for p in self.informer.list()}
        self.ipam.retain_only(live)
        if self.ipam6 is not None:
            self.ipam6.retain_only(live)
        if kernel_nat and self.network is not None:
            families = sorted({ipaddress.ip_network(c, strict=False).version for c in kernel_nat})
            bridge = self.network.bridge
            rules = (IptablesRules(prefix_of(bridge)) if self.proxy_mode == "iptables"
                     else NftRules(bridge))
            await asyncio.to_thread(natleftovers.record, bridge, self.pod_cidr)
            self.nat = KernelProxier(self.client, node=self.node_name, rules=rules, pod_ifname=bridge,
                                     service_cidrs=self.service_cidrs, families=families)
            await self.nat.start()
        if self.proxy_enabled and (self.nat is None or len(kernel_nat) < len(self.service_cidrs)):
            # loopback mode, or the loopback cluster IPs the kernel proxier leaves alone
            serves = None if self.nat is None else (lambda ip: ipaddress.ip_address(ip).is_loopback)
            # node ports: here when this proxy is the node's proxier (the kernel's otherwise)
            node_addrs = ["127.0.0.1", self.host_ip, *([self.host_ip6] if self.host_ip6 else [])]
            self.proxy = ServiceProxy(self.client, serves=serves, node=self.node_name,
                                      node_addrs=node_addrs if self.nat is None else ())
            await self.proxy.start()

    async def _assigned_cidr(self) -> str:
        """Namespace mode without --pod-cidr: the pod CIDR the control plane gives this Node (the
        node IPAM controller), checked against this machine.

        The Node is created without one if it does not exist, and the agent waits up to
        `CIDR_WAIT` seconds for `spec.podCIDR`. The CIDR is kept when it is usable here (IPv4, no
        route or address of this machine overlaps it, no other agent on this machine holds it);
        otherwise, and when no controller answers in time, the agent picks a free 10.244.<n>.0/24
        itself (`netns.choose_cidr`) and says why; `register()` then records it in the Node.
        NetnsError when the controller reports that the cluster CIDR has no block left."""
        node = await self._retry("reading the Node", self._get_or_create_node)
        deadline = asyncio.get_running_loop().time() + CIDR_WAIT
        while not (node.get("spec") or {}).get("podCIDR"):
            cond = get_condition(node, "NetworkUnavailable") or {}
            if cond.get("reason") == "CIDRNotAvailable" and cond.get("status") == "True":
                raise netns.NetnsError(f"no pod CIDR for node {self.node_name}: {cond.get('message')}")
            if asyncio.get_running_loop().time() > deadline:
                log.warning("node %s: no pod CIDR assigned within %.0f s (is the controller manager's "
                            "nodeipam controller running?); choosing one on this machine", self.node_name,
                            CIDR_WAIT)
                break
            await asyncio.sleep(CIDR_POLL)
            node = await self._retry("reading the Node", self._get_or_create_node)
        assigned = str((node.get("spec") or {}).get("podCIDR") or "")
        self._assigned = [str(c) for c in (node.get("spec") or {}).get("podCIDRs") or [assigned] if c]
        nodes = (await self._retry("listing Nodes", lambda: self.client.list(NODES))).get("items") or []
        in_use = await asyncio.to_thread(netns.host_networks)
        cidr = netns.choose_cidr(nodes, self.node_name, self.cidr_claim.try_claim, in_use)
        if assigned and cidr != assigned:
            log.warning("node %s: the assigned pod CIDR %s is not usable on this machine (%s); using %s "
                        "(the Node is recreated with it: a set pod CIDR cannot change)",
                        self.node_name, assigned, netns.check_cidr(assigned) or "held by another agent here",
                        cidr)
            self._assigned = []
            uid = str(node.get("metadata", {}).get("uid", ""))
            with contextlib.suppress(errors.NotFound, errors.Conflict):
                await self._retry("deleting the Node", lambda: self.client.delete(
                    NODES, self.node_name, preconditions={"uid": uid} if uid else None))
        return cidr

    async def _learn_service_cidr(self) -> None:
        """Namespace mode: the cluster's service CIDR when none was given (from Service
        default/kubernetes, waiting up to `CIDR_WAIT` s for the API server to make it), and a
        clear report (log, Node Event `ServiceCIDRUnusable`) when pods cannot reach its
        ClusterIPs; an IPv6 range makes the pods dual-stack."""
        deadline = asyncio.get_running_loop().time() + CIDR_WAIT
        while not self.service_cidrs:
            found = await self._retry("reading Service default/kubernetes", lambda: self.client.list(
                SERVICES, "default", field_selector="metadata.name=kubernetes"))
            items = found.get("items") or []
            learned = servicecidr.from_kubernetes_service(items[0] if items else None)
            if learned:
                self.service_cidrs = learned.split(",")
                self.service_cidr_learned = True
                log.info("node %s: service CIDR %s (the API server's)", self.node_name, learned)
            elif items or asyncio.get_running_loop().time() > deadline:
                log.warning("node %s: the cluster does not say its service CIDR (Service "
                            "default/kubernetes has no %s annotation): pass --service-cidr so pods "
                            "can reach ClusterIPs", self.node_name, SERVICE_CIDR_ANNOTATION)
                return
            else:
                await asyncio.sleep(CIDR_POLL)
        if any(ipaddress.ip_network(c, strict=False).version == 6 for c in self.service_cidrs):
            self.dual_stack = True
        why = servicecidr.unusable_reason(self.service_cidrs, self.pod_network)
        if why is not None:
            log.error("node %s: %s", self.node_name, why)
            self.events.event({"kind": "Node", "apiVersion": "v1",
                               "metadata": {"name": self.node_name, "uid": self.node_name}},
                              "Warning", "ServiceCIDRUnusable", why)

    def _claim_service_cidr(self, ranges: list[str]) -> None:
        """Claim the kernel-NATed service ranges machine-wide (`servicecidr.ServiceCIDRClaim`);
        NetnsError naming the flag to change when another cluster here NATs an overlapping one."""
        cluster = servicecidr.cluster_id(self.client.config.ca_data, self.client.server)
        flag = ("--service-cidr (of this cluster's API server: this node learned its range "
                "from it)" if self.service_cidr_learned else "--service-cidr")
        try:
            self.service_cidr_claim.claim(cluster, ranges, flag=flag, pod_cidrs=self.pod_cidrs)
        except servicecidr.ServiceCIDRConflict as exc:
            raise netns.NetnsError(str(exc)) from None

    async def _nat_leftovers(self, ranges: list[str]) -> None:
        """Remove the ClusterIP NAT rules dead agents left on this machine (`natleftovers.reap`),
        then refuse to start (NetnsError, one line per set of rules) when rules no agent here is
        known to own match a range of `ranges` (`natleftovers.conflicts`)."""
        own = netns.bridge_name(str(self.pod_cidr))
        removed = await asyncio.to_thread(natleftovers.reap, own)
        if removed:
            log.warning("node %s: removed the ClusterIP NAT rules of dead node agents: %s", self.node_name,
                        ", ".join(removed))
        clashes = await asyncio.to_thread(natleftovers.conflicts, ranges, own)
        if clashes:
            raise netns.NetnsError("; ".join(clashes))

    async def _get_or_create_node(self) -> Obj:
        try:
            return await self.client.get(NODES, self.node_name)
        except errors.NotFound:
            pass
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.node_name}}
        try:
            return await self.client.create(NODES, body)
        except errors.AlreadyExists:
            return await self.client.get(NODES, self.node_name)

    @property
    def pod_cidrs(self) -> list[str]:
        """The node's pod CIDRs, primary first (`spec.podCIDRs`)."""
        ordered = [c for c in (self.pod_cidr, self.pod_cidr6) if c]
        return ordered[::-1] if self.ipv6_primary and self.pod_cidr6 else ordered

    def _kernel_nat_ranges(self) -> list[str]:
        """The service ranges the kernel proxier serves: in netns mode with the proxy on and a
        kernel `--proxy-mode`, the ranges off loopback, IPv6 only when the pods have IPv6
        addresses ([] otherwise; then the userspace proxy serves ClusterIPs, from the root
        namespace only). Resolves `proxy_mode` (`kernel.choose_mode`); a missing tool is said at
        once, here (log and a Warning Event on the Node: `NftMissing` or `IptablesMissing`),
        and the userspace proxy stays on."""
        if not self.proxy_enabled or self.pod_network != "netns":
            return []
        ranges = [c for c in self.service_cidrs
                  if not (net := ipaddress.ip_network(c, strict=False)).is_loopback
                  and (net.version == 4 or self.pod_cidr6 is not None)]
        if not ranges:
            return []
        requested = self.proxy_mode or "auto"
        self.proxy_mode, why = choose_mode(requested)
        if self.proxy_mode is None:
            reason = "IptablesMissing" if requested == "iptables" else "NftMissing"
            log.error("node %s: no kernel NAT for ClusterIPs (--proxy-mode %s): %s; pods cannot "
                      "reach ClusterIPs, only the host can, through the userspace proxy",
                      self.node_name, requested, why)
            self.events.event({"kind": "Node", "apiVersion": "v1",
                               "metadata": {"name": self.node_name, "uid": self.node_name}},
                              "Warning", reason, f"{why}: pods cannot reach ClusterIPs (--proxy-mode "
                              f"{requested}; install the Debian package nftables or iptables)")
            return []
        fell_back = requested == "auto" and self.proxy_mode != "nftables"  # worth a word
        log.log(logging.WARNING if fell_back else logging.INFO, "node %s: ClusterIP proxy mode %s (%s)",
                self.node_name, self.proxy_mode, why)
        if self.proxy_mode == "userspace":
            log.warning("node %s: --proxy-mode userspace: the ClusterIPs of %s are not local addresses, "
                        "so the userspace proxy cannot listen on them (it serves loopback service "
                        "ranges only)", self.node_name, ", ".join(ranges))
            return []
        return ranges

    async def _retry(self, what: str, call: Callable[[], Awaitable[Obj]]) -> Obj:
        """`call()` until the API answers (as the kubelet keeps trying to register); an API that
        refuses with a non-transient error (Forbidden, Invalid, ...) stops the agent."""
        delay = 0.5
        while True:
            try:
                return await call()
            except (errors.TransportError, errors.ServerError, errors.TooManyRequests) as exc:
                log.warning("node %s: %s failed (%s); retrying in %.1f s", self.node_name, what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        """Stop everything this agent started; no pod process outlives it."""
        if self.proxy is not None:
            await self.proxy.stop()
        if self.nat is not None:
            await self.nat.stop()
            natleftovers.unrecord(self.nat.pod_ifname)
        if self.informer is not None:
            await self.informer.stop()
        workers = list(self.workers.values())
        await asyncio.gather(*(w.shutdown(min(w.grace_period(), SHUTDOWN_GRACE)) for w in workers),
                             return_exceptions=True)
        for task in list(self._writers.values()):
            task.cancel()
        for task in list(self._writers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._writers.clear()
        # the pods stay bound but are no longer ready: say so, so DNS and endpoints drop them now
        # rather than when the node lifecycle controller notices the silence
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(self._final_status(w) for w in workers)), 3.0)
        self._write_pids()
        await self.runtimes.close()
        if self.routes is not None:
            await self.routes.stop()
        if self.api_relay is not None:
            await self.api_relay.stop()
        if self.network is not None:
            try:
                await self.network.stop()
            except netns.NetnsError as exc:
                log.warning("node %s: removing the pod network: %s", self.node_name, exc)
        if self.heartbeat is not None:
            await self.heartbeat.stop()
        await self.events.stop()
        if self._runner is not None:
            await self._runner.cleanup()
        self.cidr_claim.release()
        self.cidr_claim6.release()
        self.service_cidr_claim.release()

    # -- sync ------------------------------------------------------------------------------------

    def sync(self, key: str) -> None:
        """Make the worker of pod `key` match the pod in the cache (level-triggered)."""
        assert self.informer is not None
        pod = self.informer.get(key)
        worker = self.workers.get(key)
        if worker is not None and (pod is None or worker.uid != pod.get("metadata", {}).get("uid")):
            # gone from the API (force-deleted) or replaced by a new pod of the same name
            worker.request_termination(grace=min(worker.grace_period(), FORCE_GRACE), api_gone=True)
            if pod is not None:
                self._spawn(self._resync_after(worker, key), f"resync-after:{key}")
            return
        if pod is None:
            return
        if worker is not None:
            worker.update(pod)
            return
        meta = pod.get("metadata", {})
        phase = (pod.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp"):
            # deleted while no worker ran it (e.g. the agent was down): nothing to stop
            self._spawn(self.delete_pod(pod), f"delete-pod:{key}")
            return
        if phase in ("Succeeded", "Failed"):
            return  # finished for good: never started again
        worker = PodWorker(self, pod)
        self.workers[key] = worker
        self._dirty[key] = asyncio.Event()
        self._writers[key] = asyncio.get_running_loop().create_task(self._status_writer(worker),
                                                                    name=f"status:{key}")
        worker.start()

    async def _resync_after(self, worker: PodWorker, key: str) -> None:
        await worker.finished.wait()
        await asyncio.sleep(0)
        self.sync(key)

    # -- AgentHost -------------------------------------------------------------------------------

    async def fetch_sources(self, pod: Obj) -> tuple[dict[str, Obj | None], dict[str, Obj | None]]:
        """The ConfigMaps and Secrets the pod refers to (None for each that does not exist)."""
        ns = pod.get("metadata", {}).get("namespace", "default")
        cm_names, secret_names = volumes.referenced_sources(pod)
        out: tuple[dict[str, Obj | None], dict[str, Obj | None]] = ({}, {})
        for names, resource, into in ((cm_names, CONFIGMAPS, out[0]), (secret_names, SECRETS, out[1])):
            for name in names:
                try:
                    into[name] = await self.client.get(resource, name, ns)
                except errors.KubeError:
                    into[name] = None
        return out

    async def runtime_for(self, pod: Obj) -> ContainerRuntime:
        """The runtime of the pod's RuntimeClass handler (the default without runtimeClassName),
        as the kubelet's RuntimeClass manager and the CRI resolve it. Raises SandboxError with
        the kubelet's (and containerd's) words when the class is gone or names a handler this
        node does not serve; the pod worker retries."""
        name = str((pod.get("spec") or {}).get("runtimeClassName") or "")
        handler = ""
        if name:
            try:
                handler = str((await self.client.get(RUNTIMECLASSES, name)).get("handler") or "")
            except errors.NotFound:
                raise SandboxError(f'runtimeclass.node.k8s.io "{name}" not found') from None
            except errors.KubeError as exc:
                raise SandboxError(f"failed to lookup RuntimeClass {name}: {exc}") from exc
        try:
            return await self.runtimes.for_handler(handler)
        except UnknownHandler as exc:
            # what the kubelet prints of containerd's gRPC error
            raise SandboxError(f"rpc error: code = Unknown desc = {exc}") from None

    def service_env(self) -> dict[str, str]:
        """`KUBERNETES_SERVICE_HOST`/`_PORT` (and the other `kubernetes` Service variables) for
        every container: an address of the API server a pod reaches. Loopback mode: the API
        server this agent uses (pods share the host's network, and the serving certificate
        covers loopback addresses). Namespace mode: 127.0.0.1 and the same port, where the agent's
        relay listens inside each pod's namespace (`podns.node.apirelay`)."""
        if not self.client.server.startswith("https://"):
            return {}
        if self.pod_network == "loopback":
            url = urllib.parse.urlsplit(self.client.server)
            return kubernetes_service_env(url.hostname or "127.0.0.1", url.port or 443)
        if self.api_relay is not None:
            return kubernetes_service_env(RELAY_HOST, self.api_relay.port)
        return {}

    async def request_token(self, pod: Obj, audience: str, seconds: int) -> tuple[str, float]:
        """A token of the pod's ServiceAccount bound to the pod (TokenRequest, as the kubelet's
        token manager asks): (token, expiry as epoch seconds). Raises KubeError."""
        meta = pod.get("metadata", {})
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {
            "audiences": [audience] if audience else [], "expirationSeconds": seconds,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": meta.get("name", ""),
                               "uid": meta.get("uid", "")}}}
        got = await self.client.create(SERVICEACCOUNTS, body, meta.get("namespace"), name=sa,
                                       subresource="token")
        status = got.get("status") or {}
        expiry = parse_time(status.get("expirationTimestamp"))
        return str(status.get("token") or ""), expiry if expiry is not None else time.time() + seconds

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def record_event(self, pod: Obj, etype: str, reason: str, message: str, field_path: str = "") -> None:
        self.events.event({"kind": "Pod", "apiVersion": "v1", **pod}, etype, reason, message,
                          field_path=field_path)

    def status_dirty(self, worker: PodWorker) -> None:
        event = self._dirty.get(worker.key)
        if event is not None and self.workers.get(worker.key) is worker:
            event.set()

    async def _status_writer(self, worker: PodWorker) -> None:
        event = self._dirty[worker.key]
        while True:
            await event.wait()
            event.clear()
            try:
                await self.write_status(worker)
            except errors.NotFound:
                return
            except errors.KubeError as exc:
                log.warning("pod %s: writing status failed: %s", worker.key, exc)
                await asyncio.sleep(STATUS_RETRY)
                event.set()

    async def _final_status(self, worker: PodWorker) -> None:
        with contextlib.suppress(errors.KubeError):
            await self.write_status(worker)

    async def write_status(self, worker: PodWorker) -> None:
        """Patch the pod's status now, unless it equals what was last written."""
        status = worker.status()
        if self._written.get(worker.uid) == status:
            return
        meta = worker.pod.get("metadata", {})
        await self.client.patch(PODS, meta.get("name", ""), {"status": status}, meta.get("namespace"),
                                subresource="status")
        self._written[worker.uid] = status
        self.status_writes += 1

    async def delete_pod(self, pod: Obj) -> None:
        """Remove the pod object (gracePeriodSeconds=0: its processes are already gone)."""
        meta = pod.get("metadata", {})
        worker = self.workers.get(join_key(namespace_of(pod) or "default", name_of(pod)))
        if worker is not None and worker.uid == meta.get("uid"):
            with contextlib.suppress(errors.KubeError):
                await self.write_status(worker)
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.delete(PODS, meta.get("name", ""), meta.get("namespace"),
                                     grace_period_seconds=0, preconditions={"uid": str(meta.get("uid", ""))})

    def processes_changed(self) -> None:
        if self._pids_scheduled:
            return
        self._pids_scheduled = True
        asyncio.get_running_loop().call_later(0.05, self._write_pids)

    def _write_pids(self) -> None:
        self._pids_scheduled = False
        for runtime in self.runtimes.known():
            runtime.checkpoint()

    def worker_done(self, worker: PodWorker) -> None:
        if self.workers.get(worker.key) is worker:
            del self.workers[worker.key]
            task = self._writers.pop(worker.key, None)
            if task is not None:
                task.cancel()
            self._dirty.pop(worker.key, None)
        self._written.pop(worker.uid, None)
        self.processes_changed()

    # -- HTTP endpoint ---------------------------------------------------------------------------

    def find_container(self, namespace: str, pod: str, container: str) -> tuple[ContainerRunner | None,
                                                                              Obj | None]:
        worker = self.workers.get(join_key(namespace, pod))
        if worker is None:
            return None, None
        for runner in worker.runners + worker.init_runners:
            if runner.name == container:
                return runner, worker.pod
        return None, worker.pod

    def find_pod_network(self, namespace: str, pod: str) -> PodNetworkView | None:
        """Where port-forward reaches `namespace/pod` (None when it does not run here)."""
        worker = self.workers.get(join_key(namespace, pod))
        if worker is None:
            return None
        return PodNetworkView(worker.pod, worker.pod_ip, worker.netns_path or None)

    def list_pods(self) -> list[Obj]:
        return [w.pod for w in self.workers.values()]
