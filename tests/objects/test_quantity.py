"""Resource quantities: the accepted forms, exact values and Kubernetes' error message."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.objects.quantity import QUANTITY_ERROR, is_quantity, parse_quantity


@pytest.mark.parametrize(
    "text,value",
    [("100m", "0.1"), ("1", "1"), ("2.5", "2.5"), ("1Ki", "1024"), ("1Gi", str(2**30)), ("1k", "1000"),
     ("1M", "1000000"), ("1e3", "1000"), ("5E-3", "0.005"), ("-1", "-1"), (".5", "0.5"), ("250u", "0.00025")],
)
def test_values(text: str, value: str) -> None:
    """Given canonical quantity strings, then the exact value is Kubernetes'."""
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "abc", "1Gb", "1..2", "1 Gi", "Gi", "1ki", "--1"])
def test_invalid(text: str) -> None:
    """Given malformed quantities, then ValueError carries Kubernetes' message."""
    with pytest.raises(ValueError, match="quantities must match"):
        parse_quantity(text)
    assert not is_quantity(text)
    assert QUANTITY_ERROR.startswith("quantities must match the regular expression")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "m", "k", "Ki", "Mi", "Gi"]))
def test_scaling_is_monotonic(n: int, suffix: str) -> None:
    """For any number and suffix, n+1 of a unit is more than n of it."""
    assert parse_quantity(f"{n + 1}{suffix}") > parse_quantity(f"{n}{suffix}")


@pytest.mark.parametrize("value", [None, True, [], {}, ["1"]],
                         ids=["null", "bool", "list", "object", "list-of-str"])
def test_is_quantity_of_json_that_is_no_quantity(value: object) -> None:
    """Given a decoded JSON value that is neither a string nor a number, then it is no quantity
    (not an AttributeError)."""
    assert not is_quantity(value)
