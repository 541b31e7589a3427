"""Stale UDP conntrack entries of the kernel NAT proxier, deleted as kube-proxy deletes them.

A UDP "connection" is a conntrack entry that lives as long as datagrams keep coming (30 s idle,
120 s once assured). Its NAT was decided by the first datagram, so a client that keeps sending
keeps going to the endpoint it got then, even after that endpoint has left the rules, and to a
pod that no longer exists (kube-proxy's `pkg/proxy/conntrack/cleanup.go` deletes such entries for
the same reason; TCP needs nothing: a dead peer resets or times out, and the client reconnects).

So after every successful rules sync the proxier hands the UDP part of the old and new state to
`stale_flows` (pure), and `flush` deletes the matching entries with Debian's `conntrack` tool:

- an endpoint that left a UDP Service port: entries to `clusterIP:port` DNATed to that endpoint
  (`conntrack -D -p udp --orig-dst CIP --orig-port-dst PORT --reply-src EP`);
- a UDP Service port that is gone, or that had no endpoint and now has one (its clients' entries
  then hold no DNAT: datagrams sent while it was empty): every entry to `clusterIP:port`.

`conntrack` missing is `ConntrackMissing` (the proxier reports it once: rules still work, stale
UDP flows just last until they idle out); a failure to delete is `ConntrackError` (both under
`tools.RulesError`, run through `tools.run`). Both leave the rules alone: a flush is best
effort, never a reason to retry a sync.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from podns.node.proxy.serviceports import ServicePort
from podns.node.proxy.tools import RulesError, RulesToolMissing, find_tool, run

#: the message when `conntrack` is not installed
MISSING = ("conntrack is not installed (Debian package conntrack): stale UDP flows to removed "
           "endpoints last until they idle out")
#: what `conntrack -D` says (exit 1) when no entry matched: not an error
NOTHING_DELETED = "0 flow entries have been deleted"

#: (cluster IP, port) of a UDP Service port -> the endpoint IPs its rules send to
UdpState = dict[tuple[str, int], frozenset[str]]


class ConntrackError(RulesError):
    """`conntrack -D` failed; the message is its command and stderr."""


class ConntrackMissing(ConntrackError, RulesToolMissing):
    """The `conntrack` binary is not installed (Debian package conntrack)."""


@dataclass(frozen=True, slots=True)
class Flow:
    """The UDP entries to delete: to `cluster_ip:port`, DNATed to `endpoint` (None: any)."""

    cluster_ip: str
    port: int
    endpoint: str | None = None

    def args(self) -> list[str]:
        """`conntrack -D` arguments selecting these entries."""
        family = ["-f", "ipv6"] if ipaddress.ip_address(self.cluster_ip).version == 6 else []
        out = ["-D", *family, "-p", "udp", "--orig-dst", self.cluster_ip, "--orig-port-dst", str(self.port)]
        return out + (["--reply-src", self.endpoint] if self.endpoint else [])


def udp_state(ports: Iterable[ServicePort]) -> UdpState:
    """The UDP Service ports of a sync and their endpoint IPs."""
    return {(sp.cluster_ip, sp.port): frozenset(ip for ip, _ in sp.endpoints)
            for sp in ports if sp.protocol == "UDP"}


def stale_flows(before: Mapping[tuple[str, int], frozenset[str]],
                after: Mapping[tuple[str, int], frozenset[str]]) -> list[Flow]:
    """What to delete when the rules went from `before` to `after` (see the module docstring),
    in a stable order."""
    flows: list[Flow] = []
    for key, old in sorted(before.items()):
        new = after.get(key)
        if new is None:
            flows.append(Flow(*key))
            continue
        flows += [Flow(*key, endpoint=ip) for ip in sorted(old - new)]
    for key, new in sorted(after.items()):
        if key in before and not before[key] and new:
            flows.append(Flow(*key))
    return flows


def conntrack_path() -> str | None:
    """Where `conntrack` is (`tools.find_tool`: PATH, else Debian's /usr/sbin)."""
    return find_tool("conntrack")


async def flush(flows: Sequence[Flow], *, binary: Sequence[str] | None = None) -> None:
    """Delete the entries of every flow (`binary`: the command running conntrack, None: the
    installed one). ConntrackMissing, or ConntrackError naming the first flow that failed
    (the others are still tried)."""
    if not flows:
        return
    found = conntrack_path()
    command = list(binary) if binary else [found] if found else None
    if command is None:
        raise ConntrackMissing(MISSING)
    failed: list[str] = []
    for flow in flows:
        try:
            await run(command, *flow.args(), errors=(ConntrackError, ConntrackMissing))
        except ConntrackMissing:
            raise
        except ConntrackError as exc:
            if NOTHING_DELETED not in str(exc):
                failed.append(str(exc))
    if failed:
        raise ConntrackError(failed[0] + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
