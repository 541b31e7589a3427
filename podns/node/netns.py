"""Pod networking in namespace mode (`--pod-network netns`): a bridge per node, a namespace per pod.

What the node agent owns in this mode, and only this:
- one Linux bridge per node, `podns-<hex of the CIDR's network address>` (so two nodes on one
  machine, whose pod CIDRs differ, never share one), holding the CIDR's first address: the pods'
  gateway and the address of the node's DNS relay (`podns.node.dnsrelay`);
- per pod a network namespace `podns-<uid8>` (first 8 hex digits of the pod UID) with `lo` up and
  `eth0`, the inside end of a veth pair whose host end `pv-<uid8>` is a port of the bridge; the
  pod IP comes from the node's IPAM;
- dual-stack (a second, IPv6 pod CIDR): the bridge also holds that CIDR's first address and each
  pod's `eth0` an IPv6 address of it (both without duplicate address detection, so they are
  usable at once); the IPv4 CIDR stays the one the bridge is named after and claimed by;
- per pod `/etc/netns/<namespace>/resolv.conf` (which `ip netns exec` bind-mounts on
  `/etc/resolv.conf`, and so do our own containers, see `podns.node.sandbox`), pointing at the
  relay with the Kubernetes search path and `ndots:5`.

Each pod's default route is the gateway: the node routes the pods of other nodes (`podns.node.routes`,
which switches IP forwarding on once another node needs it); the only NAT is the ClusterIPs'
(`podns.node.proxy.kernel`), so a pod reaches the pods of every node, the gateway (the DNS
relay), ClusterIPs, and nothing outside the cluster; the root namespace reaches pods through
the bridge.

Every namespace and bridge is recorded before it is created (`<lock dir>/netns/<name>` holding
the pod CIDR it belongs to; the lock dir is root's private `/run/podns`, see `podns.node.ipam`),
so an agent that starts removes what a crashed agent left: its own CIDR's leftovers, and those
of CIDRs that no running agent holds (their flock is free; judged and removed under the lock
dir's mutex, so no agent claims such a CIDR and builds its bridge anew meanwhile). Namespaces
and bridges of other live agents on the machine are never touched.

Errors: `NetnsError` (an `ip` command failed; the message is the command and its stderr).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from podns.node.ipam import claim_held, claims_locked, lock_dir, lock_name, write_record
from podns.node.proxy import ipt
from podns.node.proxy.iptables import prefix_of
from podns.node.proxy.nft import nft_path

Obj = dict[str, Any]

#: prefix of everything this module creates (namespaces, bridges); host veth ends use `pv-`
PREFIX = "podns-"
VETH_PREFIX = "pv-"
NETNS_RUN = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")
#: Kubernetes' default pod range is 10.244.0.0/16 (flannel, kind); one /24 per node as kubeadm does
NETNS_CIDR_FORMAT = "10.244.{}.0/24"
#: routing protocol number tagging the routes to other nodes' pods (`podns.node.routes`): a number
#: free in iproute2's table, so `ip route del ... proto 158` never removes a route someone else made
ROUTE_PROTO = "158"
#: `ip` is quick; a hung one (a kernel stuck on a namespace) must not wedge the agent forever
IP_TIMEOUT = 10.0
#: a unique local (RFC 4193) /48 for automatic IPv6 pod CIDRs: one /64 per node, as Kubernetes'
#: --node-cidr-mask-size-ipv6 default
NETNS_CIDR6_PREFIX = "fd00:10:244"
#: the smallest IPv6 pod CIDR accepted (a /120 is 256 addresses, like the smallest sane IPv4 one)
MAX_PREFIX6 = 120


class NetnsError(Exception):
    """A namespace, link or address could not be set up or removed."""


def unavailable_reason() -> str | None:
    """None when namespace mode can run here; otherwise the one-line reason it cannot."""
    if os.geteuid() != 0:
        return "--pod-network netns needs root (network namespaces, a bridge, the DNS relay on port 53)"
    if shutil.which("ip") is None:
        return "--pod-network netns needs `ip` (iproute2), which is not installed"
    try:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--pod-network netns: `ip netns` is unavailable: {exc}"
    if out.returncode != 0:
        return f"--pod-network netns: `ip netns` is unavailable: {out.stderr.strip() or out.returncode}"
    return _unshare_reason()


#: a child that tries to make a network namespace of its own: root in a container without
#: CAP_SYS_ADMIN passes every other check and only fails here
_UNSHARE_PROBE = ("import ctypes, os, sys\n"
                  "libc = ctypes.CDLL(None, use_errno=True)\n"
                  "sys.exit(0 if libc.unshare(0x40000000) == 0 else os.strerror(ctypes.get_errno()))\n")


def _unshare_reason() -> str | None:
    """None when this process may create a network namespace (tried in a throw-away child)."""
    try:
        out = subprocess.run([sys.executable, "-c", _UNSHARE_PROBE], capture_output=True, text=True,
                             timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"--pod-network netns: cannot test for network namespaces: {exc}"
    if out.returncode != 0:
        why = out.stderr.strip().splitlines()[-1:] or [f"exit {out.returncode}"]
        return f"--pod-network netns: network namespaces do not work here: {why[0]}"
    return None


def choose_mode(requested: str, pod_cidr: str | None) -> tuple[str, str]:
    """The pod network to run (`loopback` or `netns`) for `--pod-network requested`, and why.

    `auto` picks netns when this process is root and namespaces work (and `pod_cidr`, if given,
    is not a loopback range), else loopback; the reason says which check decided. An explicit
    mode is kept as asked (its own checks fail later with their one-line message)."""
    if requested != "auto":
        return requested, "as requested"
    if pod_cidr:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(pod_cidr, strict=False).is_loopback:
                return "loopback", f"auto: --pod-cidr {pod_cidr} is a loopback range"
    if os.geteuid() != 0:
        return "loopback", "auto: not running as root (netns mode needs root)"
    why = unavailable_reason()
    if why is not None:
        return "loopback", "auto: " + why.removeprefix("--pod-network netns").lstrip(": ")
    return "netns", "auto: running as root and network namespaces work"


def ip(*args: str, stdin: str | None = None, check: bool = True) -> str:
    """Run `ip args...`; return its stdout. Raises NetnsError (command and stderr) when `check`."""
    try:
        out = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True,
                             timeout=IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"ip {' '.join(args)}: {exc}") from exc
    if check and out.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {out.stderr.strip() or f'exit {out.returncode}'}")
    return out.stdout


def ip_json(*args: str) -> list[Obj]:
    """`ip -j args...` as a list of objects ([] when it fails or says nothing)."""
    text = ip("-j", *args, check=False).strip()
    try:
        data = json.loads(text) if text else []
    except ValueError:
        return []
    return data if isinstance(data, list) else []


_json = ip_json  # the name tests and older callers use


# -- names -------------------------------------------------------------------------------------


def uid8(uid: str) -> str:
    """The first 8 hex digits of a pod UID (what namespace and veth names are made of)."""
    digits = "".join(c for c in uid.lower() if c in "0123456789abcdef")
    return (digits or "0")[:8]


def netns_name(uid: str) -> str:
    return f"{PREFIX}{uid8(uid)}"


def veth_name(uid: str) -> str:
    return f"{VETH_PREFIX}{uid8(uid)}"


def bridge_name(cidr: str) -> str:
    """`podns-0af40700` for 10.244.7.0/24: unique per pod CIDR, at most 15 characters."""
    net = ipaddress.ip_network(cidr, strict=False)
    return f"{PREFIX}{int(net.network_address):08x}"


# -- the pod CIDR --------------------------------------------------------------------------------


def host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Networks already routed or addressed on this machine, IPv4 and IPv6 (not counting podns
    bridges, the routes to other nodes' pods (`podns.node.routes`), loopback, link-local and
    multicast ranges)."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for route in ip_json("route", "show", "table", "all") + ip_json("-6", "route", "show", "table", "all"):
        dst, dev = str(route.get("dst", "")), str(route.get("dev", ""))
        if dev.startswith(PREFIX) or dst in ("", "default") or str(route.get("protocol")) == ROUTE_PROTO:
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(dst, strict=False))
    for link in ip_json("addr"):
        if str(link.get("ifname", "")).startswith(PREFIX):
            continue
        for a in link.get("addr_info") or []:
            if a.get("family") in ("inet", "inet6"):
                with contextlib.suppress(ValueError, KeyError):
                    nets.append(ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 128)}", strict=False))
    # each once (an IPv6 route can be listed by both `ip route` calls)
    return [n for n in dict.fromkeys(nets) if not (n.is_loopback or n.is_link_local or n.is_multicast)]


def bridge_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of the podns bridges of this machine (every agent's here, not only ours)."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for route in ip_json("route", "show", "table", "main"):
        if str(route.get("dev", "")).startswith(PREFIX) and route.get("protocol") == "kernel":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(str(route.get("dst", "")), strict=False))
    return nets


def choose_cidr(nodes: list[Obj], name: str, is_free: Callable[[str], bool],
                in_use: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> str:
    """This node's `spec.podCIDR` when it is a usable IPv4 range that is free here, else the first
    10.244.<n>.0/24 that no other Node has, no route or address of this machine overlaps, and
    `is_free` (the machine-wide claim) accepts. Raises NetnsError when none is left."""
    used = list(in_use)

    def usable(cidr: str) -> bool:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        if not isinstance(net, ipaddress.IPv4Network) or net.is_loopback or net.prefixlen > 29:
            return False
        return not any(net.overlaps(u) for u in used)

    taken: set[str] = set()
    for node in nodes:
        cidr = str((node.get("spec") or {}).get("podCIDR") or "")
        if not cidr:
            continue
        if node.get("metadata", {}).get("name") == name:
            if usable(cidr) and is_free(cidr):
                return cidr
            continue
        with contextlib.suppress(ValueError):
            taken.add(str(ipaddress.ip_network(cidr, strict=False)))
    for n in range(256):
        candidate = NETNS_CIDR_FORMAT.format(n)
        if candidate not in taken and usable(candidate) and is_free(candidate):
            return candidate
    raise NetnsError("no free 10.244.<n>.0/24 pod CIDR left on this machine; pass --pod-cidr")


def ipv6_companion(cidr: str) -> str:
    """The IPv6 pod CIDR that goes with IPv4 pod CIDR `cidr` when none is given on a dual-stack
    cluster: `fd00:10:244:<c>::/64` for `10.244.<c>.0/24` (the IPv4 octets written as hex digit
    groups, so two IPv4 CIDRs never share one; a CIDR smaller than /24 gets a /80 of its own)."""
    net = ipaddress.IPv4Network(cidr, strict=False)
    a, b, c, d = net.network_address.packed
    if (a, b) == (10, 244) and net.prefixlen <= 24:
        return f"{NETNS_CIDR6_PREFIX}:{c}::/64"
    if net.prefixlen <= 24:
        return f"fd00:{a}:{b}:{c}::/64"
    return f"fd00:{a}:{b}:{c}:{d}::/80"


def check_cidr(cidr: str) -> str | None:
    """Why `cidr` cannot be a namespace-mode pod CIDR (None when it can)."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        return f"--pod-cidr {cidr}: {exc}"
    if net.is_loopback:
        return (f"--pod-cidr {cidr}: loopback addresses are local inside every namespace; "
                "use e.g. 10.244.1.0/24")
    if isinstance(net, ipaddress.IPv6Network):
        if net.is_link_local or net.is_multicast:
            return (f"--pod-cidr {cidr}: link-local and multicast ranges cannot be pod CIDRs; "
                    "use e.g. fd00:10:244:1::/64")
        if net.prefixlen > MAX_PREFIX6:
            return f"--pod-cidr {cidr}: too small (at most /{MAX_PREFIX6})"
    elif net.prefixlen > 29:
        return f"--pod-cidr {cidr}: too small (at most /29)"
    clash = [str(u) for u in host_networks() if net.overlaps(u)]
    if clash:
        return f"--pod-cidr {cidr} overlaps a network of this machine ({', '.join(clash)})"
    return None


# -- records of what we created (for crash clean-up) --------------------------------------------


def _records() -> Path:
    return lock_dir() / "netns"


def _record(name: str, cidr: str) -> None:
    """Write `<records>/<name>`, holding the CIDR it belongs to."""
    write_record(_records(), name, cidr)


def _unrecord(name: str) -> None:
    with contextlib.suppress(OSError):
        (_records() / name).unlink()


def recorded_cidr(name: str) -> str | None:
    """The pod CIDR a namespace or bridge named `name` was recorded for (None: no record)."""
    try:
        return (_records() / name).read_text().strip() or None
    except OSError:
        return None


def cidr_is_held(cidr: str) -> bool:
    """True when a running agent holds the machine-wide claim on `cidr` (see `ipam.CIDRClaim`)."""
    return claim_held(lock_dir() / lock_name(cidr))


# -- bridge --------------------------------------------------------------------------------------


def ensure_bridge(cidr: str, cidr6: str | None = None) -> tuple[str, str]:
    """Create (or reset) the node's bridge with the gateway address (and the first address of
    `cidr6`, dual-stack); return (bridge, gateway)."""
    net = ipaddress.ip_network(cidr, strict=False)
    bridge = bridge_name(cidr)
    gateway = str(net.network_address + 1)
    _record(bridge, str(net))
    if not ip_json("link", "show", "dev", bridge):
        ip("link", "add", bridge, "type", "bridge")
    ip("addr", "flush", "dev", bridge)
    ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", bridge)
    if cidr6:
        net6 = ipaddress.ip_network(cidr6, strict=False)
        ip("-6", "addr", "add", f"{net6.network_address + 1}/{net6.prefixlen}", "dev", bridge, "nodad")
    ip("link", "set", bridge, "up")
    return bridge, gateway


def delete_bridge(bridge: str) -> None:
    ip("link", "del", bridge, check=False)
    _unrecord(bridge)


def delete_nat_table(bridge: str) -> None:
    """Remove the ClusterIP rules that a crashed agent of `bridge` left: the nftables tables (ip,
    ip6) named after the bridge and the iptables chains of its prefix (`PODNS-<hex>-*`, and the
    jumps to them); nothing when there are none or the tools are missing."""
    ipt.delete_now(prefix_of(bridge), IP_TIMEOUT)
    path = nft_path()
    for family in ("ip", "ip6") if path is not None else ():
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run([str(path), "delete", "table", family, bridge], capture_output=True,
                           timeout=IP_TIMEOUT)


# -- one pod ---------------------------------------------------------------------------------------


def resolv_conf(pod: Obj, *, nameserver: str, zone: str, host_resolv: Path = Path("/etc/resolv.conf")) -> str:
    """The pod's resolv.conf, as the kubelet writes it for its `dnsPolicy` and `dnsConfig`.

    ClusterFirst (the default): the cluster DNS (here: the node's relay), search
    `<ns>.svc.<zone> svc.<zone> <zone>`, `options ndots:5`; Default: the host's file; None: only
    `dnsConfig`. `dnsConfig` nameservers, searches and options are appended (options by name)."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if spec.get("hostNetwork") and policy == "ClusterFirst":
        policy = "Default"
    servers: list[str] = []
    searches: list[str] = []
    options: dict[str, str | None] = {}
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        ns = pod.get("metadata", {}).get("namespace") or "default"
        servers = [nameserver]
        searches = [f"{ns}.svc.{zone}", f"svc.{zone}", zone]
        options = {"ndots": "5"}
    elif policy == "Default":
        with contextlib.suppress(OSError):
            return host_resolv.read_text()
    config = spec.get("dnsConfig") or {}
    servers += [str(s) for s in config.get("nameservers") or [] if str(s) not in servers]
    searches += [str(s) for s in config.get("searches") or [] if str(s) not in searches]
    for opt in config.get("options") or []:
        if opt.get("name"):
            options[str(opt["name"])] = None if opt.get("value") is None else str(opt["value"])
    lines = [f"search {' '.join(searches)}"] if searches else []
    lines += [f"nameserver {s}" for s in servers[:3]]  # the resolver reads at most three
    if options:
        lines.append("options " + " ".join(k if v is None else f"{k}:{v}" for k, v in options.items()))
    return "\n".join(lines) + "\n"


def hosts_file(pod: Obj, *, pod_ip: str, zone: str, pod_ip6: str | None = None) -> str:
    """The pod's /etc/hosts, as the kubelet writes it: localhost, then each of the pod's
    addresses with its host name (and `<hostname>.<subdomain>.<ns>.svc.<zone>` when it has a
    subdomain), then `hostAliases`."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    hostname = str(spec.get("hostname") or meta.get("name", ""))
    names = [hostname]
    if spec.get("subdomain"):
        ns = meta.get("namespace") or "default"
        names.insert(0, f"{hostname}.{spec['subdomain']}.{ns}.svc.{zone}")
    lines = ["# Kubernetes-managed hosts file (podns).", "127.0.0.1\tlocalhost",
             "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{a}\t{chr(9).join(names)}" for a in (pod_ip, pod_ip6) if a]
    for alias in spec.get("hostAliases") or []:
        if alias.get("ip") and alias.get("hostnames"):
            lines.append(f"{alias['ip']}\t{chr(9).join(str(h) for h in alias['hostnames'])}")
    return "\n".join(lines) + "\n"


def create_pod_network(uid: str, *, cidr: str, bridge: str, pod_ip: str, resolv: str,
                       hosts: str = "", pod_ip6: str | None = None, cidr6: str | None = None) -> str:
    """The pod's namespace with `lo` and `eth0` (pod_ip, and pod_ip6 of `cidr6` when dual-stack)
    up, its resolv.conf and hosts file; returns the namespace name. An existing namespace of the
    same pod is replaced. The bridge port is in hairpin mode, so a pod reaching a ClusterIP that
    maps back to itself gets its packets back when the kernel bridges them after DNAT
    (br_netfilter). Raises NetnsError."""
    ns, veth = netns_name(uid), veth_name(uid)
    net = ipaddress.ip_network(cidr, strict=False)
    prefix, gateway = net.prefixlen, net.network_address + 1
    v6 = ""
    if pod_ip6 and cidr6:
        net6 = ipaddress.ip_network(cidr6, strict=False)
        v6 = (f"addr add {pod_ip6}/{net6.prefixlen} dev eth0 nodad\n"
              f"route add default via {net6.network_address + 1} dev eth0\n")
    delete_pod_network(uid)
    _record(ns, cidr)
    etc = ETC_NETNS / ns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "resolv.conf").write_text(resolv)
    if hosts:
        (etc / "hosts").write_text(hosts)
    try:
        ip("-batch", "-", stdin=(f"netns add {ns}\n"
                                 f"link add {veth} type veth peer name eth0 netns {ns}\n"
                                 f"link set {veth} master {bridge} up\n"
                                 f"link set {veth} type bridge_slave hairpin on\n"))
        ip("-n", ns, "-batch", "-", stdin=("link set lo up\n"
                                           f"addr add {pod_ip}/{prefix} dev eth0\n"
                                           "link set eth0 up\n"
                                           f"route add default via {gateway}\n" + v6))
    except NetnsError:
        delete_pod_network(uid)
        raise
    return ns


def delete_pod_network(uid: str) -> None:
    """Remove the pod's namespace, veth and resolv.conf dir (each only if present)."""
    remove_netns(netns_name(uid))
    ip("link", "del", veth_name(uid), check=False)


def remove_netns(ns: str) -> None:
    if (NETNS_RUN / ns).exists():
        ip("netns", "del", ns, check=False)
    shutil.rmtree(ETC_NETNS / ns, ignore_errors=True)
    _unrecord(ns)


# -- leftovers -----------------------------------------------------------------------------------


def _abandoned(name: str, own_cidr: str) -> bool:
    cidr = recorded_cidr(name)
    if cidr is None:
        return False  # not ours to judge: podns records a name before creating it
    return cidr == own_cidr or not cidr_is_held(cidr)


def cleanup_leftovers(own_cidr: str) -> list[str]:
    """Remove the namespaces and bridges named `podns-*` that a previous agent with `own_cidr`
    left, or that belong to a CIDR no running agent holds; return what was removed. All of it
    under the lock dir's mutex (`ipam.claims_locked`): a CIDR judged abandoned cannot be claimed,
    and its bridge made anew, before its leftovers are gone."""
    with claims_locked():
        return _cleanup_leftovers(own_cidr)


def _cleanup_leftovers(own_cidr: str) -> list[str]:
    removed: list[str] = []
    names = sorted(os.listdir(NETNS_RUN)) if NETNS_RUN.is_dir() else []
    for ns in names:
        if ns.startswith(PREFIX) and _abandoned(ns, own_cidr):
            remove_netns(ns)
            removed.append(ns)
    for link in ip_json("link", "show", "type", "bridge"):
        name = str(link.get("ifname", ""))
        if name.startswith(PREFIX) and _abandoned(name, own_cidr):
            delete_bridge(name)
            delete_nat_table(name)
            removed.append(name)
    for link in ip_json("link", "show", "type", "veth"):
        name = str(link.get("ifname", ""))
        ns = PREFIX + name[len(VETH_PREFIX):]
        if name.startswith(VETH_PREFIX) and not link.get("master") and _abandoned(ns, own_cidr):
            ip("link", "del", name, check=False)  # a veth whose bridge went with a crashed agent
            removed.append(name)
    with contextlib.suppress(OSError):
        for rec in _records().iterdir():  # records of names that no longer exist
            if not (NETNS_RUN / rec.name).exists() and not ip_json("link", "show", "dev", rec.name):
                if _abandoned(rec.name, own_cidr):
                    rec.unlink()
    return removed
