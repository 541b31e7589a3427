"""The chaos scenario of distributed podns, shared by the e2e test and bench/distributed_chaos.py.

A whole distributed cluster on loopback: 3 etcd members, 2 API servers, 2 controller-managers
(Lease leader election with short timings), 2 DNS servers and 2 node agents (each picks its own
pod CIDR through the machine-wide claims, so pod IPs never collide), running a 2-replica
StatefulSet behind a headless Service and a ClusterIP Service.

Under two loads,
- a writer creating ConfigMaps through a client that lists both API servers, recording every
  acknowledged (2xx) write, and
- a DNS client with both DNS servers configured, asking the first and falling back to the
  second when the first does not answer in time,
(each beside its single-server peer: a writer knowing only API server 1, a resolver knowing
only DNS server 1), the scenario SIGKILLs in turn the etcd leader, one API server, the leading
controller-manager, one DNS server and one node agent, and then 2 of the 3 etcd members
(quorum loss), restarting each after `down` seconds. It then adds a replica (which needs the
controllers, a node agent and both DNS servers working again), checks that every acknowledged
write is present, and reports: writes acknowledged / lost / failed, the longest write gap per
fault, DNS queries failed (no answer from either server, or a wrong one), time to a new
controller leader, how fast a write fails without quorum, and per fault the time from restart
to serving again (for the quorum loss: to the first successful write).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import orjson

from podns.api.server.kubeconfig import write_node_kubeconfig
from podns.kube.client import Client
from podns.kube.config import load_kubeconfig
from podns.kube.errors import KubeError
from podns.kube.resources import CONFIGMAPS
from tests.e2e._distributed import (
    FAST_LEASE,
    Proc,
    a_records,
    api,
    dns_query,
    dns_server,
    holder_pid,
    lease_holder,
    start_apiservers,
    wait_dns_synced,
    wait_until,
)
from tests.e2e.conftest import Podns
from tests.etcd_cluster import EtcdCluster, start_etcd_cluster

NS = "default"
WRITE_LABEL = "chaos.podns.io/writer"
PROBE = "probe.default.svc.cluster.local"  # ClusterIP Service: its answer never changes
WEB = "web.default.svc.cluster.local"      # headless Service of the StatefulSet
REPLICAS = 2
#: seconds each DNS server gets to answer before the client moves on
DNS_TIMEOUT = 0.5


@dataclass(slots=True)
class Fault:
    """One component killed and restarted; times in seconds."""

    name: str
    killed_at: float = 0.0
    restarted_at: float = 0.0
    recovered_s: float = 0.0        # restart -> serving again
    max_write_gap_s: float = 0.0    # longest time without an acknowledged write around it
    write_errors: int = 0
    dns_failed: int = 0
    dns_fallbacks: int = 0
    single_write_errors: int = 0    # the peer writer that knows only API server 1
    single_dns_failed: int = 0      # the peer resolver that knows only DNS server 1


@dataclass(slots=True)
class Result:
    """What the scenario measured."""

    acked: int = 0
    lost: list[str] = field(default_factory=list)
    write_errors: int = 0
    dns_queries: int = 0
    dns_failed: int = 0
    dns_fallbacks: int = 0
    leader_takeover_s: float = 0.0  # the last round's; every round's in leader_takeovers
    leader_takeovers: list[float] = field(default_factory=list)
    #: without etcd quorum: how long a write took to fail, and its HTTP status
    unavailable_answer_s: float = 0.0
    unavailable_code: int = 0
    converged_s: float = 0.0        # last restart -> everything serving again
    faults: list[Fault] = field(default_factory=list)
    #: the single-server peers: a writer knowing only API server 1, a resolver only DNS server 1
    single_acked: int = 0
    single_lost: list[str] = field(default_factory=list)
    single_write_errors: int = 0
    single_dns_queries: int = 0
    single_dns_failed: int = 0

    def lines(self) -> list[str]:
        """A human-readable report."""
        out = [f"acknowledged writes: {self.acked}, lost: {len(self.lost)}, "
               f"failed (not acknowledged): {self.write_errors}",
               f"DNS queries: {self.dns_queries}, failed with both servers configured: "
               f"{self.dns_failed}, answered by the second server: {self.dns_fallbacks}",
               f"  peer with one API server: acknowledged {self.single_acked}, lost "
               f"{len(self.single_lost)}, failed {self.single_write_errors}",
               f"  peer with one DNS server: queries {self.single_dns_queries}, failed "
               f"{self.single_dns_failed}",
               f"time to a new controller leader: {self.leader_takeover_s:.2f} s",
               f"without etcd quorum a write failed with {self.unavailable_code} after "
               f"{self.unavailable_answer_s:.2f} s",
               f"after the faults, time to one more ready replica in both DNS servers: "
               f"{self.converged_s:.2f} s"]
        for f in self.faults:
            out.append(f"  {f.name:<22} recovered {f.recovered_s:5.2f} s after restart; "
                       f"longest write gap {f.max_write_gap_s:5.2f} s; write errors "
                       f"{f.write_errors} (one-server peer {f.single_write_errors}); DNS failed "
                       f"{f.dns_failed} (one-server peer {f.single_dns_failed}), fallbacks "
                       f"{f.dns_fallbacks}")
        return out


class Cluster:
    """The processes of the scenario (see the module doc); `start()` then `close()`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.etcd: EtcdCluster | None = None
        self.apis: list[Podns] = []
        self.cms: list[Proc] = []
        self.dns: list[tuple[Proc, tuple[str, int]]] = []
        self.nodes: list[Proc] = []
        self.probe_ip = ""

    def start(self) -> None:
        self.etcd = start_etcd_cluster(3)
        self.apis = start_apiservers(self.workdir, self.etcd)
        # each component with its own identity, from the API server's data dir (as an operator
        # copies them: docs/distributed.md); every one lists both API servers
        dirs = [a.data_dir for a in self.apis]
        servers = [load_kubeconfig(a.kubeconfig).servers for a in self.apis]
        node_kcs = [write_node_kubeconfig(dirs[i] / f"node-n{i + 1}.kubeconfig", dirs[i], f"n{i + 1}",
                                          server=servers[i][0], servers=servers[i]) for i in range(2)]
        self.cms = [Proc(f"cm{i}", self.workdir / f"cm{i}",
                         ["controller-manager", "--kubeconfig",
                          str(dirs[i] / "controller-manager.kubeconfig"), *FAST_LEASE])
                    for i in range(2)]
        self.dns = [dns_server(self.workdir, f"dns{i}", dirs[i] / "dns.kubeconfig") for i in range(2)]
        self.nodes = [Proc(f"n{i + 1}", self.workdir / f"n{i + 1}",
                           ["node", "--kubeconfig", str(node_kcs[i]), "--name", f"n{i + 1}",
                            "--pod-network", "loopback",
                            "--data-dir", str(self.workdir / f"n{i + 1}" / "state")])
                      for i in range(2)]
        for p in [*self.cms, *(d for d, _ in self.dns), *self.nodes]:
            p.start()
        self._create_workload()
        for d, addr in self.dns:
            wait_dns_synced(d, addr)
        wait_until(lambda: holder_pid(lease_holder(self.apis[0])) in {c.pid for c in self.cms},
                   30, "a controller-manager leads")
        self.wait_converged(60)

    def _create_workload(self) -> None:
        a = self.apis[0]
        probe = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "probe"},
                 "spec": {"ports": [{"port": 80}]}}
        code, made = api(a, "POST", "/api/v1/namespaces/default/services", probe)
        assert code == 201, made
        self.probe_ip = made["spec"]["clusterIP"]
        web = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"clusterIP": "None", "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 80}]}}
        assert api(a, "POST", "/api/v1/namespaces/default/services", web)[0] == 201
        sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
               "spec": {"serviceName": "web", "replicas": REPLICAS,
                        "podManagementPolicy": "Parallel",
                        "selector": {"matchLabels": {"app": "web"}},
                        "template": {"metadata": {"labels": {"app": "web"}},
                                     "spec": {"containers": [{"name": "c", "image": "sleep",
                                                              "command": ["sleep", "3600"]}]}}}}
        code, made = api(a, "POST", "/apis/apps/v1/namespaces/default/statefulsets", sts)
        assert code == 201, made

    def scale(self, replicas: int) -> None:
        """Set the web StatefulSet's replicas (through API server 2)."""
        path = "/apis/apps/v1/namespaces/default/statefulsets/web"
        code, sts = api(self.apis[1], "GET", path)
        assert code == 200, sts
        sts["spec"]["replicas"] = replicas
        code, sts = api(self.apis[1], "PUT", path, sts)
        assert code == 200, sts

    def processes(self) -> list[Proc]:
        return [*self.cms, *(d for d, _ in self.dns), *self.nodes]

    def wait_converged(self, timeout: float, replicas: int = REPLICAS) -> None:
        """Until both nodes are Ready, `replicas` web pods are Ready and both DNS servers
        answer the headless name with one address per replica and the ClusterIP name with its
        IP."""
        a = self.apis[0]

        def converged() -> bool:
            for p in self.processes():
                p.check()
            code, nodes = api(a, "GET", "/api/v1/nodes", timeout=3)
            if code != 200 or len(nodes["items"]) != 2 or not all(_ready(n) for n in nodes["items"]):
                return False
            code, pods = api(a, "GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb",
                             timeout=3)
            if code != 200 or sum(_ready(p) for p in pods["items"]) != replicas:
                return False
            return all(len(a_records(dns_query(addr, WEB))) == replicas
                       and a_records(dns_query(addr, PROBE)) == [self.probe_ip]
                       for _, addr in self.dns)
        wait_until(converged, timeout, "cluster converged", step=0.2)

    def close(self) -> None:
        for p in self.processes():
            p.stop(5)
        for a in self.apis:
            a.kill()
        if self.etcd is not None:
            self.etcd.close()


def _ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions", []))


def etcd_leader(etcd: EtcdCluster) -> int:
    """Index of the member that leads etcd now (asked through the JSON gateway)."""
    for i, m in enumerate(etcd.members):
        if m.proc is None:
            continue
        req = urllib.request.Request(m.endpoint + "/v3/maintenance/status", data=b"{}",
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=2) as r:
                st = orjson.loads(r.read())
        except OSError:
            continue
        if st.get("leader") and st["leader"] == st.get("header", {}).get("member_id"):
            return i
    return 0


class Loads:
    """The writers and DNS clients, as asyncio tasks; `stop()` ends them.

    The measured pair (a writer whose client lists both API servers, a resolver with both DNS
    servers) runs beside its single-server peer (a writer that knows only API server 1, a
    resolver that knows only DNS server 1), so the report shows what failover buys.
    """

    def __init__(self, cluster: Cluster, *, write_interval: float, dns_interval: float) -> None:
        self.cluster = cluster
        self.write_interval = write_interval
        self.dns_interval = dns_interval
        self.acked: list[tuple[float, str]] = []
        self.write_failures: list[float] = []
        self.dns: list[tuple[float, bool, bool]] = []  # (time, answered correctly, fallback)
        self.single_acked: list[tuple[float, str]] = []
        self.single_write_failures: list[float] = []
        self.single_dns: list[tuple[float, bool, bool]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        apis = [a.api_url for a in self.cluster.apis]
        addrs = [addr for _, addr in self.cluster.dns]
        self._tasks = [
            asyncio.create_task(self._writer(apis, "w", self.acked, self.write_failures)),
            asyncio.create_task(self._writer(apis[:1], "s", self.single_acked,
                                             self.single_write_failures)),
            asyncio.create_task(self._resolver(addrs, self.dns)),
            asyncio.create_task(self._resolver(addrs[:1], self.single_dns)),
        ]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _writer(self, servers: list[str], prefix: str, acked: list[tuple[float, str]],
                      failures: list[float]) -> None:
        config = load_kubeconfig(self.cluster.apis[0].kubeconfig, servers=servers)
        async with Client(config) as client:
            i = 0
            while not self._stop.is_set():
                name = f"{prefix}-{i}"
                i += 1
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "labels": {WRITE_LABEL: prefix}},
                        "data": {"i": str(i)}}
                try:
                    async with asyncio.timeout(15):
                        await client.create(CONFIGMAPS, body, NS)
                    acked.append((time.monotonic(), name))
                except (KubeError, TimeoutError):
                    failures.append(time.monotonic())
                await asyncio.sleep(self.write_interval)

    async def _resolver(self, addrs: list[tuple[str, int]],
                        records: list[tuple[float, bool, bool]]) -> None:
        want = [self.cluster.probe_ip]
        while not self._stop.is_set():
            ok, fallback = False, False
            for n, addr in enumerate(addrs):
                q = dns.message.make_query(PROBE, dns.rdatatype.A)
                try:
                    msg = await dns.asyncquery.udp(q, addr[0], port=addr[1], timeout=DNS_TIMEOUT)
                except (dns.exception.Timeout, OSError):
                    continue
                if msg.rcode() == dns.rcode.SERVFAIL:
                    continue  # not synced: a resolver tries the next server
                ok, fallback = a_records(msg) == want, n > 0
                break
            records.append((time.monotonic(), ok, fallback))
            await asyncio.sleep(self.dns_interval)


async def _blocking(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


async def run_faults(cluster: Cluster, result: Result, *, down: float, settle: float) -> None:
    """Kill and restart each kind of component in turn, filling `result.faults`."""
    etcd = cluster.etcd
    assert etcd is not None

    async def fault(name: str, kill: Any, restart: Any, *, wait_down: bool = True) -> Fault:
        f = Fault(name)
        f.killed_at = time.monotonic()
        await _blocking(kill)
        if wait_down:
            await asyncio.sleep(down)
        f.restarted_at = time.monotonic()
        await _blocking(restart)
        f.recovered_s = time.monotonic() - f.restarted_at
        result.faults.append(f)
        await asyncio.sleep(settle)
        return f

    leader = await _blocking(etcd_leader, etcd)

    def etcd_restart() -> None:
        etcd.start_member(leader)
        etcd.wait_healthy(members=[leader])
    await fault(f"etcd leader (m{leader})", lambda: etcd.stop_member(leader), etcd_restart)

    api0 = cluster.apis[0]
    await fault("API server 1", api0.kill, api0.start)

    # the leading controller-manager: time until the other one holds the Lease
    holder = await _blocking(lease_holder, cluster.apis[1])
    pid = holder_pid(holder)
    victim = next(c for c in cluster.cms if c.pid == pid)
    other = next(c for c in cluster.cms if c is not victim)
    killed = time.monotonic()

    def takeover() -> None:
        wait_until(lambda: holder_pid(lease_holder(cluster.apis[1])) == other.pid, 60,
                   "the standby controller-manager takes the Lease", step=0.05)
        result.leader_takeover_s = time.monotonic() - killed
        result.leader_takeovers.append(result.leader_takeover_s)
    f = await fault("leading controller-manager", victim.kill, lambda: (takeover(), victim.start()),
                    wait_down=False)
    f.recovered_s = result.leader_takeover_s

    dns0, addr0 = cluster.dns[0]
    await fault("DNS server 1", dns0.kill, lambda: (dns0.start(), wait_dns_synced(dns0, addr0)))

    node = cluster.nodes[0]

    def node_restart() -> None:
        node.start()
        since = time.time()
        wait_until(lambda: _lease_renewed_since(cluster.apis[1], node.name, since), 30,
                   f"node {node.name} heartbeats again", step=0.1)
    await fault(f"node agent {node.name}", node.kill, node_restart)

    # etcd quorum: 2 of 3 members; the API must answer 503/504 quickly, DNS its last state
    lost = [i for i in range(len(etcd.members)) if i != leader][:2]
    probe = {"n": 0}

    def lose_quorum() -> None:
        for i in lost:
            etcd.stop_member(i)
        t = time.monotonic()
        code, _ = api(cluster.apis[1], "POST", "/api/v1/namespaces/default/configmaps",
                      {"metadata": {"name": "during-quorum-loss"}})
        result.unavailable_answer_s = time.monotonic() - t
        result.unavailable_code = code

    def regain_quorum() -> None:
        for i in lost:
            etcd.start_member(i)
        etcd.wait_healthy(members=lost)

        def writes() -> bool:
            probe["n"] += 1
            name = f"quorum-probe-{probe['n']}"
            return api(cluster.apis[0], "POST", "/api/v1/namespaces/default/configmaps",
                       {"metadata": {"name": name}}, timeout=10)[0] == 201
        wait_until(writes, 60, "a write after quorum returned", step=0.1)
    await fault("etcd quorum (2 of 3)", lose_quorum, regain_quorum)


def _lease_renewed_since(p: Podns, node: str, since: float) -> bool:
    code, lease = api(p, "GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
                                f"{node}", timeout=3)
    if code != 200:
        return False
    renew = lease.get("spec", {}).get("renewTime")
    if not renew:
        return False
    from podns.objects.times import parse_time

    renewed = parse_time(renew)
    return renewed is not None and renewed >= since - 0.5


async def run(workdir: Path, *, down: float = 3.0, settle: float = 1.5, rounds: int = 1,
              write_interval: float = 0.05, dns_interval: float = 0.02) -> Result:
    """Start the cluster, run `rounds` rounds of faults under load, check, and report."""
    cluster = Cluster(workdir)
    result = Result()
    try:
        await _blocking(cluster.start)
        loads = Loads(cluster, write_interval=write_interval, dns_interval=dns_interval)
        loads.start()
        await asyncio.sleep(settle)
        for _ in range(rounds):
            await run_faults(cluster, result, down=down, settle=settle)
        # one more replica: the controllers (scheduler, StatefulSet, EndpointSlice), a node
        # agent and both DNS servers must all be working again for it to show up
        t = time.monotonic()
        await _blocking(cluster.scale, REPLICAS + 1)
        await _blocking(cluster.wait_converged, 60, REPLICAS + 1)
        result.converged_s = time.monotonic() - t
        await asyncio.sleep(settle)
        await loads.stop()
        await _account(cluster, loads, result)
    finally:
        await _blocking(cluster.close)
    return result


async def _account(cluster: Cluster, loads: Loads, result: Result) -> None:
    """Fill in the totals and per-fault figures, and list what the API holds."""
    config = load_kubeconfig(cluster.apis[1].kubeconfig)
    async with Client(config) as client:
        listed = await client.list_all(CONFIGMAPS, NS, label_selector=WRITE_LABEL)
    present = {item["metadata"]["name"] for item in listed.get("items", [])}
    result.single_acked = len(loads.single_acked)
    result.single_lost = [name for _, name in loads.single_acked if name not in present]
    result.single_write_errors = len(loads.single_write_failures)
    result.single_dns_queries = len(loads.single_dns)
    result.single_dns_failed = sum(not ok for _, ok, _ in loads.single_dns)
    result.acked = len(loads.acked)
    result.lost = [name for _, name in loads.acked if name not in present]
    result.write_errors = len(loads.write_failures)
    result.dns_queries = len(loads.dns)
    result.dns_failed = sum(not ok for _, ok, _ in loads.dns)
    result.dns_fallbacks = sum(fb for _, _, fb in loads.dns)
    ack_times = [t for t, _ in loads.acked]
    for i, f in enumerate(result.faults):
        end = result.faults[i + 1].killed_at if i + 1 < len(result.faults) else ack_times[-1]
        window = [f.killed_at] + [t for t in ack_times if f.killed_at <= t <= end] + [end]
        f.max_write_gap_s = max(b - a for a, b in itertools.pairwise(window))
        f.write_errors = sum(f.killed_at <= t <= end for t in loads.write_failures)
        f.dns_failed = sum(f.killed_at <= t <= end and not ok for t, ok, _ in loads.dns)
        f.dns_fallbacks = sum(f.killed_at <= t <= end and fb for t, _, fb in loads.dns)
        f.single_write_errors = sum(f.killed_at <= t <= end for t in loads.single_write_failures)
        f.single_dns_failed = sum(f.killed_at <= t <= end and not ok
                                  for t, ok, _ in loads.single_dns)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
