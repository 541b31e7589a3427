"""The kernel NAT ruleset for ClusterIPs in iptables mode: Service ports -> iptables-restore input.

The fallback of the nftables ruleset (`nftables.py`) for machines without `nft`, with the same
behaviour and kube-proxy's iptables-mode structure (kubernetes `pkg/proxy/iptables`), in chains
of podns's own whose names start with the node's prefix (`PODNS-<hex of the pod CIDR>`, so
several agents on one machine never touch each other's chains):

- nat `PREROUTING` (packets from this node's pod bridge only) and `OUTPUT` (the host's own
  connections) jump to `<prefix>-SERVICES`, one rule per Service port
  (`-d clusterIP -p tcp --dport 80`) jumping to its `<prefix>-SVC-<hash>` chain;
- a `SVC` chain first sends clients with ClientIP affinity back to their endpoint (`-m recent
  --rcheck --seconds <timeoutSeconds> --reap`, one recent list per endpoint), then picks an
  endpoint at random per new connection: rule i of n jumps with `-m statistic --mode random
  --probability 1/(n-i)`, the last one always;
- a `<prefix>-SEP-<hash>` chain marks a pod's connection to itself for masquerading (hairpin:
  `-s podIP -j <prefix>-MARK-MASQ`, kube-proxy's mark bit 0x4000), records the client in its
  recent list (affinity), and DNATs to `podIP:targetPort`;
- NodePorts: nat `PREROUTING` and `OUTPUT` jump, for packets to a local address
  (`-m addrtype --dst-type LOCAL`), to `<prefix>-NODEPORTS`, which marks a connection to a node
  port for masquerading and sends it to the Service port's `SVC` chain; IPv4 node ports are
  served on 127.0.0.1 too (kube-proxy's iptables mode: the proxier sets `route_localnet` on the
  bridge, and filter `INPUT` drops pods' non-reply packets to 127.0.0.0/8, as the kubelet's
  `KUBE-FIREWALL`), IPv6 ones never on ::1. `externalTrafficPolicy: Local` goes to the port's
  `EXT` chain instead: pods (the bridge) and the node itself marked and to `SVC`, everyone else
  to `SVL` (this node's endpoints) unmarked, so the client's address is kept; with no endpoint
  here filter `INPUT` (`<prefix>-EXTERNAL`) drops what was not DNATed;
- `internalTrafficPolicy: Local`: the ClusterIP goes to the port's `SVL` chain, or, with no
  endpoint on this node, the filter table drops it;
- nat `POSTROUTING` jumps to `<prefix>-POSTROUTING`, which masquerades DNATed connections that
  leave through the pod bridge (a pod reaching a pod of its own node: without it the reply
  would cross the bridge un-NATed) and the host's own connections to the service CIDR, as the
  nft table does, then every marked one (kube-proxy's `KUBE-POSTROUTING`);
- filter `FORWARD` (from the pod bridge) and `OUTPUT` jump, for new connections, to the filter
  table's `<prefix>-SERVICES`, which REJECTs a Service port with no endpoint, any other port of
  a cluster IP and an unallocated address of the service CIDR (filter runs after nat, so DNATed
  packets already carry the pod address).

The input is a full resync for `iptables-restore --noflush`: declaring a chain (`:NAME - [0:0]`)
creates or flushes it, so every podns chain of the node is rewritten, chains no longer wanted are
flushed and deleted (`-X`), and the jumps from the built-in chains (which are never flushed: they
belong to the machine) are inserted only when `iptables-save` does not show them already. Each
table's block is committed as one transaction. `delete_script` removes everything of a prefix.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from podns.node.proxy.serviceports import ServicePort, chain_hash

#: kube-proxy's masquerade mark (bit 14): the same bit, so a machine also running kube-proxy
#: masquerades these connections exactly once either way
MASQ_MARK = "0x4000"
LOOPBACK = "127.0.0.0/8"
BUILTIN = ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING")
TABLES = ("nat", "filter")


@dataclass(frozen=True, slots=True)
class Saved:
    """What `iptables-save` shows of one prefix in one table: its chains, and the rules of the
    built-in chains that jump to them (as saved, `-A CHAIN ...`)."""

    chains: frozenset[str] = frozenset()
    jumps: tuple[str, ...] = field(default_factory=tuple)


def prefix_of(name: str) -> str:
    """The chain prefix for the node named by its bridge (`podns-0af40100` -> `PODNS-0AF40100`;
    with `-SVC-` and 8 hash characters 27 characters, inside iptables' limit of 28)."""
    return name.upper()


def parse_save(text: str, prefix: str) -> dict[str, Saved]:
    """`iptables-save` output -> what each table holds of `prefix`'s chains."""
    own = f"{prefix}-"
    chains: dict[str, set[str]] = {}
    jumps: dict[str, list[str]] = {}
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            chains.setdefault(table, set())
            jumps.setdefault(table, [])
        elif line.startswith(":") and line[1:].split(" ", 1)[0].startswith(own):
            chains[table].add(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            words = line.split()
            target = words[words.index("-j") + 1] if "-j" in words[:-1] else ""
            if words[1] in BUILTIN and target.startswith(own):
                jumps[table].append(line.strip())
    return {t: Saved(frozenset(chains[t]), tuple(jumps[t])) for t in chains
            if chains[t] or jumps[t]}


def service_chain(prefix: str, sp: ServicePort) -> str:
    return f"{prefix}-SVC-{chain_hash(sp.key)}"


def endpoint_chain(prefix: str, sp: ServicePort, ip: str, port: int) -> str:
    return f"{prefix}-SEP-{chain_hash(f'{sp.key}__{ip}/{port}')}"


def local_chain(prefix: str, sp: ServicePort) -> str:
    """The chain picking among this node's endpoints (a traffic policy Local)."""
    return f"{prefix}-SVL-{chain_hash(sp.key)}"


def external_chain(prefix: str, sp: ServicePort) -> str:
    """The chain NodePort traffic of an `externalTrafficPolicy: Local` port goes to."""
    return f"{prefix}-EXT-{chain_hash(sp.key)}"


def _picks(prefix: str, sp: ServicePort, endpoints: Sequence[tuple[str, int]]) -> list[str]:
    """The rules of a chain that sends a new connection to one of `endpoints`: clients with
    ClientIP affinity back to theirs, then rule i of n with probability 1/(n-i)."""
    sticky: list[str] = []
    picks: list[str] = []
    n = len(endpoints)
    for i, (ip, port) in enumerate(endpoints):
        sep = endpoint_chain(prefix, sp, ip, port)
        if sp.affinity_timeout:
            sticky.append(f"-m recent --name {sep} --rcheck --seconds {sp.affinity_timeout} --reap -j {sep}")
        chance = f"-m statistic --mode random --probability {1.0 / (n - i):0.10f} " if i < n - 1 else ""
        picks.append(f"{chance}-j {sep}")
    return sticky + picks


def _jumps(prefix: str, pod_ifname: str | None) -> dict[str, list[str]]:
    """The rules of the built-in chains that lead into the prefix's chains, as iptables-save
    prints them (so an existing one is recognised by its text)."""
    iif = f"-i {pod_ifname} " if pod_ifname else ""
    services = f"{prefix}-SERVICES"
    local = f"-m addrtype --dst-type LOCAL -j {prefix}-NODEPORTS"
    return {"nat": [f"-A PREROUTING {iif}-j {services}", f"-A PREROUTING {local}",
                    f"-A OUTPUT -j {services}", f"-A OUTPUT {local}",
                    f"-A POSTROUTING -j {prefix}-POSTROUTING"],
            "filter": [f"-A INPUT -m conntrack --ctstate NEW -j {prefix}-EXTERNAL",
                       f"-A FORWARD {iif}-m conntrack --ctstate NEW -j {services}",
                       f"-A OUTPUT -m conntrack --ctstate NEW -j {services}"]}


def _table(name: str, chains: dict[str, list[str]], jumps: Sequence[str], saved: Saved | None) -> list[str]:
    """One table's block: declare (create or flush) the wanted chains and the stale ones, fix the
    built-in jumps, write the rules, delete the stale chains."""
    saved = saved or Saved()
    stale = sorted(saved.chains - set(chains))
    lines = [f"*{name}"]
    lines += [f":{chain} - [0:0]" for chain in [*chains, *stale]]
    lines += [f"-D {rule[3:]}" for rule in saved.jumps if rule not in jumps]
    for rule in jumps:
        if rule not in saved.jumps:
            chain, rest = rule[3:].split(" ", 1)
            lines.append(f"-I {chain} 1 {rest}")
    for chain, rules in chains.items():
        lines += [f"-A {chain} {rule}" for rule in rules]
    lines += [f"-X {chain}" for chain in stale]
    lines.append("COMMIT")
    return lines


def render(ports: Sequence[ServicePort], *, prefix: str, family: int = 4, pod_ifname: str | None,
           service_cidrs: Iterable[str] = (), existing: dict[str, Saved] | None = None) -> str:
    """The `iptables-restore --noflush` input (`ip6tables-restore` for family 6) that makes the
    chains of `prefix` serve exactly `ports`.

    `pod_ifname`: the node's pod bridge (the only interface whose packets are DNATed to cluster
    IPs in PREROUTING; None: every interface). `service_cidrs`: ranges whose unallocated
    addresses are rejected (those of another family are ignored). `existing`: `parse_save` of
    the tables now, so that stale chains are deleted and present jumps not doubled. Raises
    ValueError on a port of another family (the caller filters by family)."""
    host, loopback = (32, "127.0.0.0/8") if family == 4 else (128, "::1/128")
    ports = sorted(ports, key=lambda sp: (sp.key, sp.cluster_ip))
    for sp in ports:
        if ipaddress.ip_address(sp.cluster_ip).version != family:
            raise ValueError(f"{sp.key}: cluster IP {sp.cluster_ip} is not IPv{family}")
    nets = sorted({str(n) for n in (ipaddress.ip_network(c, strict=False) for c in service_cidrs)
                   if n.version == family})
    services, nodeports = f"{prefix}-SERVICES", f"{prefix}-NODEPORTS"
    mark, post = f"{prefix}-MARK-MASQ", f"{prefix}-POSTROUTING"
    external = f"{prefix}-EXTERNAL"
    nat: dict[str, list[str]] = {services: [], nodeports: [], mark: [f"-j MARK --or-mark {MASQ_MARK}"],
                                 post: []}
    reject: list[str] = []
    # filter INPUT, new connections: what reaches a node address un-DNATed and must not be
    # served. IPv4 localhost NodePorts need route_localnet on the bridge, which would also let a
    # pod reach the node's own 127.0.0.1 services: blocked here (kubelet's KUBE-FIREWALL rule)
    unserved: list[str] = ([f"-i {pod_ifname} ! -s {LOOPBACK} -d {LOOPBACK} -m conntrack ! --ctstate DNAT "
                            "-j DROP"] if family == 4 and pod_ifname else [])
    seen_node_ports: set[tuple[str, int]] = set()
    # IPv6 has no route_localnet: ::1 never takes node ports (kube-proxy's iptables mode alike)
    not_lo = f"! -d {loopback} " if family == 6 else ""
    for sp in ports:
        proto = sp.protocol.lower()
        match = f"-d {sp.cluster_ip}/{host} -p {proto} -m {proto} --dport {sp.port}"
        if not sp.endpoints:
            reject.append(f"{match} -j REJECT")
            continue  # a node port without endpoints: nothing listens there, so refused anyway
        svc = service_chain(prefix, sp)
        local = local_chain(prefix, sp) if sp.local_endpoints and (sp.internal_local or (
            sp.node_port and sp.external_local)) else None
        if not sp.internal_local:
            nat[services].append(f"{match} -j {svc}")
        elif local:
            nat[services].append(f"{match} -j {local}")
        else:  # internalTrafficPolicy Local without an endpoint here: dropped, as kube-proxy
            reject.append(f"{match} -j DROP")
        if sp.node_port and (proto, sp.node_port) not in seen_node_ports:
            seen_node_ports.add((proto, sp.node_port))
            node_match = f"{not_lo}-p {proto} -m {proto} --dport {sp.node_port}"
            if sp.external_local:
                ext = external_chain(prefix, sp)
                nat[nodeports].append(f"{node_match} -j {ext}")
                # pods and the node itself reach every endpoint, masqueraded (kube-proxy's
                # short-circuits; see nftables.py)
                nat[ext] = ([f"-i {pod_ifname} -j {mark}", f"-i {pod_ifname} -j {svc}"] if pod_ifname
                            else []) + [f"-m addrtype --src-type LOCAL -j {mark}",
                                        f"-m addrtype --src-type LOCAL -j {svc}"]
                if local:
                    nat[ext].append(f"-j {local}")
                else:
                    unserved.append(f"-m addrtype --dst-type LOCAL {node_match} -j DROP")
            else:
                nat[nodeports] += [f"{node_match} -j {mark}", f"{node_match} -j {svc}"]
        for ip, port in sp.endpoints:
            sep = endpoint_chain(prefix, sp, ip, port)
            target = f"[{ip}]:{port}" if family == 6 else f"{ip}:{port}"
            rules = [f"-s {ip}/{host} -j {mark}"]  # hairpin
            if sp.affinity_timeout:
                rules.append(f"-m recent --name {sep} --set")
            rules.append(f"-p {proto} -m {proto} -j DNAT --to-destination {target}")
            nat[sep] = rules
        nat[svc] = _picks(prefix, sp, sp.endpoints)
        if local:
            nat[local] = _picks(prefix, sp, sp.local_endpoints)
    # same-node pod to pod through a ClusterIP (without br_netfilter the reply would cross the
    # bridge un-NATed) and the host's own ClusterIP connections, as the nft table does; then
    # what was marked (hairpin, node ports), as kube-proxy's KUBE-POSTROUTING
    # (only connections to the service CIDR: a NodePort's of externalTrafficPolicy Local keeps
    # its client's address, and those of Cluster are marked anyway)
    to_services = [f" --ctorigdst {net}" for net in nets] or [""]
    nat[post] = [f"-o {pod_ifname} -m conntrack --ctstate DNAT{dst} -j MASQUERADE"
                 for dst in to_services] if pod_ifname else []
    nat[post] += [f"-m addrtype --src-type LOCAL -m conntrack --ctstate DNAT --ctorigdst {net} -j MASQUERADE"
                  for net in nets]
    nat[post] += [f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
                  f"-j MARK --xor-mark {MASQ_MARK}", "-j MASQUERADE"]
    reject += [f"-d {ip}/{host} -j REJECT"
               for ip in sorted({sp.cluster_ip for sp in ports}, key=ipaddress.ip_address)]
    reject += [f"-d {net} -j REJECT" for net in nets]
    jumps = _jumps(prefix, pod_ifname)
    existing = existing or {}
    lines = _table("nat", nat, jumps["nat"], existing.get("nat"))
    lines += _table("filter", {services: reject, external: unserved}, jumps["filter"],
                    existing.get("filter"))
    return "\n".join(lines) + "\n"


def delete_script(existing: dict[str, Saved]) -> str:
    """The restore input that removes everything `existing` shows of a prefix: the jumps from
    the built-in chains, then its chains (flushed first, so none refers to another); "" when
    there is nothing."""
    lines: list[str] = []
    for name in TABLES:
        saved = existing.get(name)
        if saved is not None and (saved.chains or saved.jumps):
            lines += _table(name, {}, (), saved)
    return "\n".join(lines) + "\n" if lines else ""
