"""Kernel NAT rules that dead node agents left: owner records, removal, and conflicts.

A netns-mode agent's ClusterIP NAT (the nft tables `ip|ip6 podns-<hex>`, or the iptables chains
`PODNS-<HEX>-*`, named after its bridge: `podns.node.proxy.kernel`) outlives the agent when it is
killed (SIGKILL, OOM, a reboot of the process but not the machine), whatever happens to its data
dir: the kernel keeps the rules, and a cluster started later whose service CIDR overlaps has the
host's connections DNATed, or rejected, by a cluster that no longer exists. As kube-proxy removes
its own leftovers at start, an agent removes what dead agents left before it NATs, and never
touches what a live agent owns.

Ownership: before its first rule an agent writes `<lock dir>/nat/<table>` (`record`): its pid,
that process's start time and its pod CIDR, whose machine-wide claim (`ipam.CIDRClaim`, an flock
the kernel drops when the process dies) it holds while it lives. Rules of a name are **provably
orphaned** when their record names a process that is gone (no such pid, or one started at
another time) and nobody holds the CIDR's claim; rules of an older podns, which wrote no such
record, count by their bridge's record (`netns.recorded_cidr`) and its claim, as its bridge
does. `reap` judges and removes under the lock dir's mutex (`ipam.claims_locked`), so no agent
can claim that CIDR and write rules of that name in between.

Rules named like podns's whose owner cannot be told (no record here: an agent with another lock
dir, one in another pid namespace, rules made by hand) are never removed. When they NAT a range
overlapping the agent's service CIDR, `conflicts` says so in one line per name, with the command
that removes them, and the agent refuses to start (its caller raises).

Blocking (`nft`, `iptables-save`): callers run these in a worker thread.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from podns.node import netns
from podns.node.ipam import Network, claim_held, claims_locked, lock_dir, lock_name, write_record
from podns.node.proxy.ipt import RESTORE, SAVE
from podns.node.proxy.nft import nft_path
from podns.node.proxy.tools import find_tool

#: what podns names its tables (`netns.bridge_name`); iptables chains are the same, upper case
_TABLE = re.compile(r"podns-[0-9a-f]{8}")
_CHAIN = re.compile(r":(PODNS-[0-9A-F]{8})-")
#: where a table's destinations are in `nft list table` (the rejected ranges, the elements of its
#: sets and maps: cluster IPs) and in `iptables-save` (`-d`, `--ctorigdst` of the prefix's rules)
_NFT_DEST = re.compile(r"daddr (\{[^}]*\}|[0-9a-fA-F.:/]+) reject|elements = \{([^}]*)\}")
_IPT_DEST = re.compile(r"(?:^|\s)(?:-d|--ctorigdst) ([0-9a-fA-F.:/]+)")
_ADDRESS = re.compile(r"[0-9a-fA-F.:]+(?:/\d+)?")


def _records() -> Path:
    return lock_dir() / "nat"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who wrote rules of a name, as far as this machine's records say."""

    cidr: str  # the pod CIDR whose claim the owner held
    pid: int | None = None  # None: an older podns's rules, known by their bridge's record only
    start: int | None = None


def process_start(pid: int) -> int | None:
    """The start time of process `pid` (clock ticks after boot, /proc/<pid>/stat field 22); None
    when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:
        return int(text.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def record(table: str, cidr: str) -> None:
    """Say that this process, holding the claim on pod CIDR `cidr`, owns the rules named `table`."""
    pid = os.getpid()
    write_record(_records(), table, json.dumps({"pid": pid, "start": process_start(pid), "cidr": cidr}))


def unrecord(table: str) -> None:
    with contextlib.suppress(OSError):
        (_records() / table).unlink()


def owner(table: str) -> Owner | None:
    """The recorded owner of the rules named `table` (None: nothing here says who)."""
    try:
        data = json.loads((_records() / table).read_text())
        return Owner(str(data["cidr"]), int(data["pid"]),
                     None if data.get("start") is None else int(data["start"]))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    cidr = netns.recorded_cidr(table)
    return Owner(cidr) if cidr else None


def alive(who: Owner) -> bool:
    """True unless the owner is provably gone: its process is not running (or the pid is another
    process's now) and no agent holds its CIDR's claim. Call under `claims_locked`."""
    if who.pid is not None and who.start is not None and process_start(who.pid) == who.start:
        return True
    return claim_held(lock_dir() / lock_name(who.cidr))


# -- what the kernel holds -----------------------------------------------------------------------


def _run(*args: str) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=netns.IP_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout if out.returncode == 0 else ""


def nft_tables() -> list[tuple[str, str]]:
    """The podns-named nft tables of this network namespace as (family, name)."""
    path = nft_path()
    if path is None:
        return []
    found = []
    for line in _run(path, "list", "tables").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "table" and _TABLE.fullmatch(words[2]):
            found.append((words[1], words[2]))
    return found


def _iptables_save(family: int) -> str:
    tool, restore = find_tool(SAVE[family]), find_tool(RESTORE[family])
    if tool is None or restore is None:
        return ""
    return _run(tool, "-t", "nat") + _run(tool, "-t", "filter")


def iptables_prefixes() -> set[str]:
    """The table names (lower case) of the podns-named iptables chains here, either family."""
    return {m.group(1).lower() for family in (4, 6) for m in _CHAIN.finditer(_iptables_save(family))}


def names() -> set[str]:
    """Every podns-named set of NAT rules in this network namespace (nft tables of either family,
    iptables chain prefixes), by table name."""
    return {name for _family, name in nft_tables()} | iptables_prefixes()


def nat_ranges(table: str) -> list[Network]:
    """The destinations the rules named `table` match (cluster IPs, service ranges): what they
    would DNAT or reject of this host's connections (pods' own addresses may be among them)."""
    texts: list[str] = []
    path = nft_path()
    for family, name in nft_tables():
        if name == table and path is not None:
            texts += [m.group(1) or m.group(2) for m in _NFT_DEST.finditer(
                _run(path, "list", "table", family, name))]
    prefix = table.upper() + "-"
    for version in (4, 6):
        for line in _iptables_save(version).splitlines():
            if line.startswith(f"-A {prefix}") and "-j DNAT" not in line:
                texts += [m.group(1) for m in _IPT_DEST.finditer(line)]
    found: list[Network] = []
    for token in (t for text in texts for t in _ADDRESS.findall(text)):
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(token, strict=False)
            if not net.is_loopback and (net.version == 6 or "." in token):
                found.append(net)
    return list(dict.fromkeys(found))


# -- removing and refusing -----------------------------------------------------------------------


def reap(own: str) -> list[str]:
    """Remove the NAT rules (and records) of every owner that is provably gone, other than the
    rules named `own` (this agent's: its first sync rewrites them); return what was removed,
    for the log."""
    removed: list[str] = []
    with claims_locked():
        kernel = names()
        present = set(kernel)
        with contextlib.suppress(OSError):  # records of rules already gone, for their removal
            present |= {p.name for p in _records().iterdir() if _TABLE.fullmatch(p.name)}
        for table in sorted(present - {own}):
            who = owner(table)
            if who is None or alive(who):
                continue
            if table in kernel:
                netns.delete_nat_table(table)
                removed.append(f"{table} (pod CIDR {who.cidr}"
                               + (f", pid {who.pid} gone)" if who.pid is not None else ")"))
            unrecord(table)
    return removed


def conflicts(ranges: Iterable[str], own: str) -> list[str]:
    """One line for each set of podns-named NAT rules here, not `own` and of no known owner,
    that matches a destination inside `ranges` (the service CIDRs this agent is about to NAT)."""
    mine = [ipaddress.ip_network(r, strict=False) for r in ranges]
    lines = []
    for table in sorted(names() - {own}):
        if owner(table) is not None:
            continue  # a live agent's (the service CIDR claim judges those) or already reaped
        clash = next(((n, m) for n in nat_ranges(table) for m in mine
                      if n.version == m.version and n.overlaps(m)), None)
        if clash is not None:
            lines.append(f"NAT rules {table} on this machine match {clash[0]}, which overlaps service CIDR "
                         f"{clash[1]}, and no podns agent here is known to own them (a podns with "
                         f"another lock dir, or rules left by an older podns): if no podns uses them, "
                         f"remove them ({_removal(table)}), or pass another --service-cidr")
    return lines


def _removal(table: str) -> str:
    """The commands that remove the rules named `table`."""
    steps = [f"nft delete table {family} {name}" for family, name in nft_tables() if name == table]
    if table in iptables_prefixes():
        steps.append(f"the iptables chains {table.upper()}-* and the jumps to them")
    return "; ".join(steps) or "nothing left"
