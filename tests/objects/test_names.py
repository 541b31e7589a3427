"""Name validation: Kubernetes' exact messages and a property test against the regexes."""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.objects import names


@pytest.mark.parametrize(
    "value,ok",
    [("a", True), ("my-name", True), ("123-abc", True), ("-a", False), ("a-", False),
     ("A", False), ("a.b", False), ("a" * 63, True), ("a" * 64, False), ("", False)],
    ids=str,
)
def test_dns1123_label(value: str, ok: bool) -> None:
    """Given a candidate label, then it is accepted iff Kubernetes accepts it."""
    assert (names.is_dns1123_label(value) == []) is ok


def test_dns1123_label_message_is_kubernetes_wording() -> None:
    """Given an invalid label, then the message is Kubernetes' (with its double space)."""
    assert names.is_dns1123_label("Foo") == [
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
        "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
        "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_subdomain_and_dns1035() -> None:
    """Given names for objects and services, then subdomains allow dots and DNS-1035 needs a
    leading letter."""
    assert names.is_dns1123_subdomain("db-0.db-service") == []
    assert names.is_dns1123_subdomain("a" * 254)[0] == "must be no more than 253 characters"
    assert names.is_dns1035_label("abc-123") == []
    assert names.is_dns1035_label("1abc")[0].startswith("a DNS-1035 label must consist")


@pytest.mark.parametrize(
    "key,ok",
    [("app", True), ("example.com/app", True), ("a/b/c", False), ("/app", False),
     ("Example.com/app", False), ("app_", False), ("My.Name", True), ("a" * 64, False)],
    ids=str,
)
def test_qualified_name(key: str, ok: bool) -> None:
    """Given a label key, then it is a qualified name iff Kubernetes says so."""
    assert (names.is_qualified_name(key) == []) is ok


def test_qualified_name_messages() -> None:
    """Given a bad prefix or name part, then the message says which part."""
    assert names.is_qualified_name("/x") == ["prefix part must be non-empty"]
    assert names.is_qualified_name("x/")[0] == "name part must be non-empty"
    assert names.is_qualified_name("x" * 64)[0] == "name part must be no more than 63 characters"


def test_label_value_and_port_name() -> None:
    """Given label values and port names, then empty values are fine and port names follow IANA."""
    assert names.is_label_value("") == []
    assert names.is_label_value("a b")
    assert names.is_valid_port_name("postgres") == []
    assert "must contain at least one letter (a-z)" in names.is_valid_port_name("123")
    assert "must not contain consecutive hyphens (--)" in names.is_valid_port_name("a--b")


def test_generate_name() -> None:
    """Given a long prefix, then the generated name is at most 63 characters with a 5-char suffix."""
    rng = random.Random(1)
    name = names.generate_name("x" * 80, rng)
    assert len(name) == 63 and name.startswith("x" * 58)
    assert re.fullmatch("web-[bcdfghjklmnpqrstvwxz2456789]{5}", names.generate_name("web-", rng))


@given(st.text(alphabet="abcz09-.A_", max_size=70))
def test_label_agrees_with_regex(value: str) -> None:
    """For any string, validity is exactly: regex match and length <= 63."""
    expected = bool(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", value)) and len(value) <= 63
    assert (names.is_dns1123_label(value) == []) is expected


@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}",
                     fullmatch=True))
def test_generated_subdomains_are_valid(value: str) -> None:
    """Any string built from the subdomain grammar (and short enough) is accepted."""
    assert names.is_dns1123_subdomain(value) == []
