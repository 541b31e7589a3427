"""IP families and dual-stack CIDR lists, as Kubernetes spells them.

A dual-stack setting (`--service-cidr`, `--pod-cidr`, kube-apiserver's
`--service-cluster-ip-range`, kube-controller-manager's `--cluster-cidr`) is one or two
comma-separated CIDRs, at most one per IP family, in either order; the first is the primary
(`status.podIP`, a Service's default family, `spec.clusterIP`). `parse_cidrs` checks exactly
that and nothing about sizes (each flag has its own limits); `ip_family` names the family of an
address the way the API does (`"IPv4"`, `"IPv6"`).

Pure: no I/O. Errors are `ValueError` with a one-line message that names the offending entry.
"""

from __future__ import annotations

import ipaddress

IPV4, IPV6 = "IPv4", "IPv6"
#: the values of Service `spec.ipFamilies[]`, sorted as Kubernetes lists them in errors
IP_FAMILIES = (IPV4, IPV6)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def ip_family(ip: object) -> str | None:
    """`"IPv4"` or `"IPv6"` for an address (text or ipaddress object, or a network); None when
    `ip` is not one."""
    if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv4Network)):
        return IPV4
    if isinstance(ip, (ipaddress.IPv6Address, ipaddress.IPv6Network)):
        return IPV6
    try:
        addr = ipaddress.ip_address(str(ip))
    except ValueError:
        return None
    return IPV4 if addr.version == 4 else IPV6


def other_family(family: str) -> str:
    """The other IP family (`IPv4` <-> `IPv6`)."""
    return IPV6 if family == IPV4 else IPV4


def parse_cidrs(text: str) -> list[Network]:
    """The CIDRs of a one-or-two-entry, comma-separated list, primary first.

    Host bits are allowed and dropped (`10.0.0.1/8` is `10.0.0.0/8`), as kube-apiserver's
    `ParseCIDRSloppy` does. Raises ValueError for an empty list or entry, an entry that is not
    a CIDR, more than two entries, or two of one family."""
    entries = [e.strip() for e in str(text).split(",")]
    if not entries or entries == [""]:
        raise ValueError("no CIDR given")
    if len(entries) > 2:
        raise ValueError(f"{text!r}: at most two CIDRs (one IPv4, one IPv6)")
    nets: list[Network] = []
    for entry in entries:
        if not entry:
            raise ValueError(f"{text!r}: empty entry")
        if "/" not in entry:
            raise ValueError(f"{entry!r} is not a CIDR (address/prefix length)")
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a valid CIDR: {exc}") from None
    if len(nets) == 2 and nets[0].version == nets[1].version:
        family = ip_family(nets[0])
        raise ValueError(f"{text!r}: both CIDRs are {family}; a dual-stack list needs one IPv4 and "
                         "one IPv6 CIDR")
    return nets


def format_cidrs(nets: list[Network]) -> str:
    """The canonical comma-separated text of a CIDR list (what `parse_cidrs` reads back)."""
    return ",".join(str(n) for n in nets)


def families_of(nets: list[Network]) -> list[str]:
    """The IP family of each CIDR, in order (the cluster's families, primary first)."""
    return [IPV4 if n.version == 4 else IPV6 for n in nets]
