"""argparse types for flags whose impossible values must fail at start-up, with one line naming
the flag and exit code 2 (the parser's usage error), instead of a traceback later or a 400 that
blames a user's object: CIDRs (one, or two of different IP families), addresses, ports,
non-negative seconds."""

from __future__ import annotations

import argparse
import ipaddress
import math

from podns.objects import cidrs

#: kube-apiserver's limit on --service-cluster-ip-range: at most 2^20 addresses (IPv4 /12)
MAX_SERVICE_CIDR_BITS = 20


def _cidrs(text: str) -> list[cidrs.Network]:
    try:
        return cidrs.parse_cidrs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def service_cidr(text: str) -> str:
    """--service-cidr: one CIDR, or two of different families (dual-stack, primary first), each
    of at most 2^20 addresses and at least 4 (as kube-apiserver's --service-cluster-ip-range).
    Returns the canonical comma-separated list."""
    nets = _cidrs(text)
    for net in nets:
        host_bits = net.max_prefixlen - net.prefixlen
        if host_bits > MAX_SERVICE_CIDR_BITS:
            raise argparse.ArgumentTypeError(
                f"{str(net)!r} is too large; the mask must be >= {net.max_prefixlen - MAX_SERVICE_CIDR_BITS}")
        if host_bits < 2:
            raise argparse.ArgumentTypeError(f"{str(net)!r} is too small: it leaves no address for Services")
    return cidrs.format_cidrs(nets)


def port_range(text: str) -> tuple[int, int]:
    """--service-node-port-range: `first-last` (kube-apiserver's form; `base+size` as well),
    inclusive, inside 1-65535."""
    try:
        if "+" in text:
            base, size = (int(x) for x in text.split("+", 1))
            lo, hi = base, base + size
        else:
            lo, hi = (int(x) for x in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range (first-last, e.g. "
                                         "30000-32767)") from None
    if not 1 <= lo <= hi <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: the ports must be between 1 and 65535, the "
                                         "first not above the last")
    return lo, hi


def pod_cidr(text: str) -> str:
    """--pod-cidr: one CIDR, or two of different families (dual-stack, primary first); whether
    they fit the pod network mode is checked with the mode. Returns the canonical list."""
    return cidrs.format_cidrs(_cidrs(text))


def ip_address(text: str) -> str:
    """An IPv4 or IPv6 address."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def node_ips(text: str) -> str:
    """--node-ip: one address, or an IPv4 and an IPv6 one comma-separated (the kubelet's
    dual-stack --node-ip). Returns the canonical comma-separated list."""
    entries = [e.strip() for e in str(text).split(",")]
    if len(entries) > 2:
        raise argparse.ArgumentTypeError(f"{text!r}: at most two addresses (one IPv4, one IPv6)")
    addrs = [ip_address(e) for e in entries]
    if len(addrs) == 2 and ipaddress.ip_address(addrs[0]).version == ipaddress.ip_address(addrs[1]).version:
        raise argparse.ArgumentTypeError(f"{text!r}: two addresses must be one IPv4 and one IPv6")
    return ",".join(addrs)


def port(text: str) -> int:
    """A TCP/UDP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative number of seconds")
    return value
