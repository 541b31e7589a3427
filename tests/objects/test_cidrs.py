"""Dual-stack CIDR lists (`--service-cidr`, `--pod-cidr`): one or two CIDRs, one per family."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.objects.cidrs import families_of, format_cidrs, ip_family, parse_cidrs


@pytest.mark.parametrize(("text", "expected"), [
    ("10.96.0.0/16", ["10.96.0.0/16"]),
    ("10.96.0.0/16,fd00:10:96::/112", ["10.96.0.0/16", "fd00:10:96::/112"]),
    (" fd00:10:96::/112 , 10.96.0.0/16 ", ["fd00:10:96::/112", "10.96.0.0/16"]),
    ("10.96.0.7/16", ["10.96.0.0/16"]),  # host bits dropped, as ParseCIDRSloppy
], ids=["v4", "v4-v6", "v6-first", "host-bits"])
def test_parse(text: str, expected: list[str]) -> None:
    """given one or two CIDRs of different families, then they parse in order, primary first."""
    assert [str(n) for n in parse_cidrs(text)] == expected


@pytest.mark.parametrize(("text", "why"), [
    ("", "no CIDR"),
    ("10.0.0.0/8,10.1.0.0/16", "both CIDRs are IPv4"),
    ("fd00::/64,fd01::/64", "both CIDRs are IPv6"),
    ("10.0.0.0/8,fd00::/64,10.1.0.0/16", "at most two"),
    ("10.0.0.0/33", "not a valid CIDR"),
    ("10.0.0.1", "not a CIDR"),
    ("10.0.0.0/8,", "empty entry"),
    ("garbage/8", "not a valid CIDR"),
], ids=["empty", "two-v4", "two-v6", "three", "bad-prefix", "no-prefix", "trailing-comma", "garbage"])
def test_bad_lists(text: str, why: str) -> None:
    """given a bad list, then ValueError with a message saying what is wrong."""
    with pytest.raises(ValueError, match=why):
        parse_cidrs(text)


def test_families() -> None:
    assert ip_family("10.0.0.1") == "IPv4" and ip_family("fd00::1") == "IPv6" and ip_family("x") is None
    assert families_of(parse_cidrs("fd00::/64,10.0.0.0/8")) == ["IPv6", "IPv4"]


v4 = st.builds(lambda a, p: ipaddress.IPv4Network((a, p), strict=False),
               st.integers(0, 2**32 - 1), st.integers(0, 32))
v6 = st.builds(lambda a, p: ipaddress.IPv6Network((a, p), strict=False),
               st.integers(0, 2**128 - 1), st.integers(0, 128))


@given(v4, v6, st.booleans())
def test_round_trip(a: ipaddress.IPv4Network, b: ipaddress.IPv6Network, v6_first: bool) -> None:
    """any IPv4 + IPv6 pair, in either order, formats and parses back to itself."""
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [b, a] if v6_first else [a, b]
    assert parse_cidrs(format_cidrs(nets)) == nets


@given(st.one_of(v4, v6), st.one_of(v4, v6))
def test_same_family_pairs_refused(a: ipaddress.IPv4Network | ipaddress.IPv6Network,
                                   b: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    """a pair of one family is never accepted; a pair of two families always is."""
    text = f"{a},{b}"
    if a.version == b.version:
        with pytest.raises(ValueError, match="both CIDRs"):
            parse_cidrs(text)
    else:
        assert parse_cidrs(text) == [a, b]


@given(st.text(max_size=40))
def test_arbitrary_text_is_value_error_or_list(text: str) -> None:
    """whatever the text, parse_cidrs returns one or two networks or raises ValueError."""
    try:
        nets = parse_cidrs(text)
    except ValueError:
        return
    assert 1 <= len(nets) <= 2
