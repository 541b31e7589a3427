"""The kernel NAT ruleset for ClusterIPs (netns mode): Service ports -> one `nft -f` script.

A pure function (`render`) from the node's Service ports (`serviceports.ServicePort`, endpoints
already filtered to those that take traffic) to the text of one nftables transaction that makes
the node's own table, and nothing else, say exactly that. The structure is kube-proxy's nftables
mode (kubernetes `pkg/proxy/nftables`), written for podns:

- `nat-prerouting` (packets from this node's pod bridge only, so agents of other clusters on the
  machine never DNAT each other's pods) and `nat-output` (the host's own connections) jump to
  `services`, whose verdict map `service-ips` sends `clusterIP . protocol . port` to the port's
  `svc-*` chain;
- a `svc-*` chain picks an endpoint at random per new connection (`numgen random mod N vmap`),
  after the ClientIP affinity sets (`aff-*`, one per endpoint, `update`d with the client
  address, entries timing out after the Service's `timeoutSeconds`) have had their say;
- an `ep-*` chain DNATs to `podIP:targetPort`;
- NodePorts: `nat-prerouting` (any interface) and `nat-output` jump, for packets to a local
  address other than loopback (kube-proxy's nftables mode serves no localhost node ports either),
  to `nodeports`, whose verdict map `service-nodeports` sends `protocol . nodePort` to the same
  `svc-*` chain; such connections are marked (set `node-ports`, mark 0x4000) and masqueraded in
  `nat-postrouting`, as kube-proxy does for `externalTrafficPolicy: Cluster`. With
  `externalTrafficPolicy: Local` the map sends them to the port's `ext-*` chain: pods (the
  bridge) and the node itself are marked and sent to `svc-*`, everyone else to `lcl-*` (this
  node's endpoints), unmasqueraded; with no endpoint here they are not DNATed and
  `filter-input` drops them (map `no-endpoint-nodeports`);
- `internalTrafficPolicy: Local`: the ClusterIP goes to `lcl-*`, or, with no endpoint on this
  node, is dropped (`no-endpoint-services` says `drop` rather than `goto reject-chain`);
- `nat-postrouting` masquerades DNATed ClusterIP connections that leave through the pod bridge
  (a pod reaching a pod of its own node, or itself: hairpin; without it the backend's reply
  would go straight back over the bridge and never be un-NATed) and those the host itself
  opened, as kube-proxy does for traffic from outside the cluster CIDR;
- `filter-forward` (from the pod bridge) and `filter-output` (the host; after `nat-output`, so
  DNATed packets already carry the pod address) reject new connections to a Service port with
  no endpoint (`no-endpoint-services`), to a port a cluster IP does not have, and to an
  unallocated address of the service CIDR, so nothing meant for a ClusterIP leaves the node.

Chain and set names are `<kind>-<8 chars of a hash>-<readable key>`: the hash keeps them unique
and stable, the key lets an operator read `nft list table` (see docs/node.md). They are written
bare: nft 1.0 refuses quoted names in declarations, and its scanner takes the letters, digits and
`-_./` they are made of (an IPv6 address's colons become dots).

The script is a full resync that keeps the table: declare every object (`add` is idempotent),
flush every chain and map, write the rules and elements, then delete chains and sets that are no
longer wanted (`existing` says which ones the table has now). `nft -f` applies it as one
transaction, so the kernel's table is the old one or the new one, never half of each; the
affinity sets of endpoints that stay are not flushed, so clients keep their endpoint across
syncs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from podns.node.proxy.serviceports import ServicePort, chain_hash

#: nat output runs at -100 (kube-proxy's priority); the output filter runs after it, at -90, so
#: that a connection already DNATed to a pod is not taken for one to an unknown ClusterIP port
OUTPUT_FILTER_PRIORITY = -90
#: forward filter before the default filter priority (0), as kube-proxy's (-110)
FORWARD_FILTER_PRIORITY = -110

#: the chains and sets every table has (the per-Service-port ones come and go)
BASE_CHAINS = {
    "nat-prerouting": "type nat hook prerouting priority dstnat; policy accept;",
    "nat-output": "type nat hook output priority -100; policy accept;",
    "nat-postrouting": "type nat hook postrouting priority srcnat; policy accept;",
    "filter-input": f"type filter hook input priority {FORWARD_FILTER_PRIORITY}; policy accept;",
    "filter-forward": f"type filter hook forward priority {FORWARD_FILTER_PRIORITY}; policy accept;",
    "filter-output": f"type filter hook output priority {OUTPUT_FILTER_PRIORITY}; policy accept;",
}
REGULAR_CHAINS = ("services", "nodeports", "cluster-ips-check", "reject-chain")
CLUSTER_IPS = "cluster-ips"
SERVICE_IPS = "service-ips"
NO_ENDPOINTS = "no-endpoint-services"
#: NodePorts: `protocol . port` -> the Service port's chain, and the set of those ports (their
#: connections are marked for masquerade, so replies come back through this node)
SERVICE_NODEPORTS = "service-nodeports"
NODE_PORTS = "node-ports"
#: `protocol . port` -> drop, for packets to a node address that were not DNATed (filter-input):
#: the node ports of externalTrafficPolicy Local without an endpoint on this node (kube-proxy's
#: map also rejects those with no endpoint at all; here nothing listens there, so the kernel
#: refuses them, and the node's table never touches a port it does not serve)
NO_ENDPOINT_NODEPORTS = "no-endpoint-nodeports"
#: kube-proxy's masquerade mark (bit 14), as the iptables backend's
MASQ_MARK = "0x00004000"


@dataclass(frozen=True, slots=True)
class TableState:
    """The names of the chains and sets (maps included) a table holds now."""

    chains: frozenset[str] = frozenset()
    sets: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Family:
    table: str  # nft family: ip or ip6
    addr_type: str
    match: str  # the payload keyword: ip or ip6
    loopback: str  # NodePorts are not served on it (DNAT to a pod from loopback needs route_localnet)

    def host_port(self, ip: str, port: int) -> str:
        return f"[{ip}]:{port}" if self.table == "ip6" else f"{ip}:{port}"


FAMILIES = {4: _Family("ip", "ipv4_addr", "ip", "127.0.0.0/8"), 6: _Family("ip6", "ipv6_addr", "ip6", "::1")}


def service_chain(sp: ServicePort) -> str:
    return f"svc-{chain_hash(sp.key)}-{sp.key}"


def endpoint_chain(sp: ServicePort, ip: str, port: int) -> str:
    target = f"{ip.replace(':', '.')}/{port}"
    return f"ep-{chain_hash(f'{sp.key}__{target}')}-{sp.key}__{target}"


def local_chain(sp: ServicePort) -> str:
    """The chain picking among this node's endpoints (a traffic policy Local)."""
    return f"lcl-{chain_hash(sp.key)}-{sp.key}"


def external_chain(sp: ServicePort) -> str:
    """The chain NodePort traffic of an `externalTrafficPolicy: Local` port goes to."""
    return f"ext-{chain_hash(sp.key)}-{sp.key}"


def _pick(sp: ServicePort, endpoints: Sequence[tuple[str, int]], fam: _Family) -> list[str]:
    """The rules of a chain that sends a new connection to one of `endpoints` (at random, after
    the ClientIP affinity sets have had their say)."""
    rules: list[str] = []
    targets = [endpoint_chain(sp, ip, port) for ip, port in endpoints]
    if sp.affinity_timeout:
        rules += [f"{fam.match} saddr @{affinity_set(sp, ip, port)} goto {ep}"
                  for (ip, port), ep in zip(endpoints, targets, strict=True)]
    if len(targets) == 1:
        rules.append(f"goto {targets[0]}")
    else:
        vmap = ", ".join(f"{i} : goto {ep}" for i, ep in enumerate(targets))
        rules.append(f"numgen random mod {len(targets)} vmap {{ {vmap} }}")
    return rules


def affinity_set(sp: ServicePort, ip: str, port: int) -> str:
    """The ClientIP affinity set of one endpoint; its timeout is part of the name, so a changed
    `timeoutSeconds` makes a new set rather than clash with the old one's definition."""
    return f"aff-{chain_hash(f'{sp.key}__{ip}/{port}')}-{sp.affinity_timeout}"


def render(ports: Sequence[ServicePort], *, table: str, family: int = 4, pod_ifname: str | None,
           service_cidrs: Iterable[str] = (), existing: TableState | None = None) -> str:
    """The `nft -f` script that makes `family`'s table `table` serve exactly `ports`.

    `pod_ifname`: the node's pod bridge (the only interface whose packets are DNATed in
    prerouting; None: every interface). `service_cidrs`: ranges whose unallocated addresses are
    rejected (those of another family are ignored). `existing`: what the table holds now (None:
    no such table), so that chains and sets no longer wanted are deleted in the same transaction.
    Raises ValueError on a port of another family (the caller filters by family)."""
    fam = FAMILIES[family]
    t = f"{fam.table} {table}"
    ports = sorted(ports, key=lambda sp: (sp.key, sp.cluster_ip))
    for sp in ports:
        if ipaddress.ip_address(sp.cluster_ip).version != family:
            raise ValueError(f"{sp.key}: cluster IP {sp.cluster_ip} is not IPv{family}")
    lines = [f"add table {t}"]
    lines += [f"add chain {t} {name} {{ {spec} }}" for name, spec in BASE_CHAINS.items()]
    lines += [f"add chain {t} {name}" for name in REGULAR_CHAINS]
    lines += [f"add set {t} {CLUSTER_IPS} {{ type {fam.addr_type}; }}"]
    key_type = f"{fam.addr_type} . inet_proto . inet_service"
    lines += [f"add map {t} {m} {{ type {key_type} : verdict; }}" for m in (SERVICE_IPS, NO_ENDPOINTS)]
    lines += [f"add map {t} {m} {{ type inet_proto . inet_service : verdict; }}"
              for m in (SERVICE_NODEPORTS, NO_ENDPOINT_NODEPORTS)]
    lines.append(f"add set {t} {NODE_PORTS} {{ type inet_proto . inet_service; }}")

    chains: dict[str, list[str]] = {name: [] for name in [*BASE_CHAINS, *REGULAR_CHAINS]}
    sets: dict[str, int] = {}  # affinity set -> timeout
    service_elements: list[str] = []
    no_endpoint_elements: list[str] = []
    nodeport_elements: dict[str, str] = {}  # `proto . port` -> verdict
    masq_node_ports: set[str] = set()  # externalTrafficPolicy Cluster: masqueraded
    no_endpoint_nodeports: dict[str, str] = {}  # `proto . port` -> drop
    iif = f'iifname "{pod_ifname}" ' if pod_ifname else ""
    for sp in ports:
        element = f"{sp.cluster_ip} . {sp.protocol.lower()} . {sp.port}"
        node_key = f"{sp.protocol.lower()} . {sp.node_port}" if sp.node_port else ""
        if not sp.endpoints:  # its node port too: nothing listens there, so refused anyway
            no_endpoint_elements.append(f"{element} : goto reject-chain")
            continue
        svc = service_chain(sp)
        local = local_chain(sp) if sp.local_endpoints and (sp.internal_local or (
            node_key and sp.external_local)) else None
        if not sp.internal_local:
            service_elements.append(f"{element} : goto {svc}")
        elif local:
            service_elements.append(f"{element} : goto {local}")
        else:  # internalTrafficPolicy Local without an endpoint here: dropped, as kube-proxy
            no_endpoint_elements.append(f"{element} : drop")
        if node_key and node_key not in nodeport_elements:
            if sp.external_local:
                ext = external_chain(sp)
                nodeport_elements[node_key] = f"goto {ext}"
                # pods and the node itself reach every endpoint, masqueraded (kube-proxy's
                # short-circuits; a pod's source, kept, would make a same-node endpoint
                # answer it straight over the bridge, past the un-DNAT)
                mark = f"meta mark set meta mark | {MASQ_MARK}"
                chains[ext] = ([f"{iif}{mark} goto {svc}"] if iif else []) + [
                    f"fib saddr type local {mark} goto {svc}"]
                if local:
                    chains[ext].append(f"goto {local}")
                else:
                    no_endpoint_nodeports[node_key] = "drop"
            else:
                nodeport_elements[node_key] = f"goto {svc}"
                masq_node_ports.add(node_key)
        for ip, port in sp.endpoints:
            ep_rules: list[str] = []
            if sp.affinity_timeout:
                aff = affinity_set(sp, ip, port)
                sets[aff] = sp.affinity_timeout
                ep_rules.append(f"update @{aff} {{ {fam.match} saddr }}")
            ep_rules.append(f"meta l4proto {sp.protocol.lower()} dnat to {fam.host_port(ip, port)}")
            chains[endpoint_chain(sp, ip, port)] = ep_rules
        chains[svc] = _pick(sp, sp.endpoints, fam)
        if local:
            chains[local] = _pick(sp, sp.local_endpoints, fam)

    dnated = f"ct status dnat ct original {fam.match} daddr @{CLUSTER_IPS}"
    chains["nat-prerouting"] = [f"{iif}jump services", "fib daddr type local jump nodeports"]
    chains["nat-output"] = ["jump services", "fib daddr type local jump nodeports"]
    chains["services"] = [f"{fam.match} daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"]
    not_lo = f"{fam.match} daddr != {fam.loopback} "
    chains["nodeports"] = [
        f"{not_lo}meta l4proto . th dport @{NODE_PORTS} meta mark set meta mark | {MASQ_MARK}",
        f"{not_lo}meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"]
    chains["filter-input"] = [f"ct state new fib daddr type local {not_lo}"
                              f"meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"]
    chains["nat-postrouting"] = ([f'{dnated} oifname "{pod_ifname}" masquerade'] if pod_ifname else [])
    chains["nat-postrouting"].append(f"{dnated} fib saddr type local masquerade")
    chains["nat-postrouting"].append(f"meta mark & {MASQ_MARK} == {MASQ_MARK} masquerade")
    chains["filter-forward"] = [f"{iif}ct state new jump cluster-ips-check"]
    chains["filter-output"] = ["ct state new jump cluster-ips-check"]
    check = [f"{fam.match} daddr . meta l4proto . th dport vmap @{NO_ENDPOINTS}",
             f"{fam.match} daddr @{CLUSTER_IPS} reject"]
    cidrs = sorted({str(n) for n in (ipaddress.ip_network(c, strict=False) for c in service_cidrs)
                    if n.version == family})
    if cidrs:
        check.append(f"{fam.match} daddr {{ {', '.join(cidrs)} }} reject")
    chains["cluster-ips-check"] = check
    chains["reject-chain"] = ["reject"]

    stale_chains = sorted((existing.chains if existing else frozenset()) - set(chains))
    stale_sets = sorted((existing.sets if existing else frozenset())
                        - {*sets, CLUSTER_IPS, SERVICE_IPS, NO_ENDPOINTS, SERVICE_NODEPORTS, NODE_PORTS,
                           NO_ENDPOINT_NODEPORTS})
    for name in chains:
        if name not in BASE_CHAINS and name not in REGULAR_CHAINS:
            lines.append(f"add chain {t} {name}")
    for name, timeout in sets.items():
        lines.append(f"add set {t} {name} {{ type {fam.addr_type}; flags dynamic,timeout; "
                     f"timeout {timeout}s; }}")
    lines += [f"flush map {t} {m}" for m in (SERVICE_IPS, NO_ENDPOINTS, SERVICE_NODEPORTS,
                                              NO_ENDPOINT_NODEPORTS)]
    lines += [f"flush set {t} {m}" for m in (CLUSTER_IPS, NODE_PORTS)]
    lines += [f"flush chain {t} {name}" for name in [*chains, *stale_chains]]
    for name, rules in chains.items():
        lines += [f"add rule {t} {name} {rule}" for rule in rules]
    all_ips = sorted({sp.cluster_ip for sp in ports}, key=ipaddress.ip_address)
    nodeports = [f"{key} : {verdict}" for key, verdict in sorted(nodeport_elements.items())]
    unserved = [f"{key} : {verdict}" for key, verdict in sorted(no_endpoint_nodeports.items())]
    for name, elements in ((CLUSTER_IPS, all_ips), (SERVICE_IPS, service_elements),
                           (NO_ENDPOINTS, no_endpoint_elements), (SERVICE_NODEPORTS, nodeports),
                           (NODE_PORTS, sorted(masq_node_ports)), (NO_ENDPOINT_NODEPORTS, unserved)):
        if elements:
            lines.append(f"add element {t} {name} {{ {', '.join(elements)} }}")
    lines += [f"delete chain {t} {name}" for name in stale_chains]
    lines += [f"delete set {t} {name}" for name in stale_sets]
    return "\n".join(lines) + "\n"


def delete_script(table: str, family: int = 4) -> str:
    """The script that removes the table (and so every rule and set of it) in one transaction."""
    return f"delete table {FAMILIES[family].table} {table}\n"
