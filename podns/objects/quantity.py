"""Kubernetes resource quantities (`100m`, `1Gi`, `2.5`, `1e3`): parsing and comparison.

`parse_quantity` turns the canonical string forms into an exact `Decimal` (CPU in cores,
memory in bytes), as `resource.ParseQuantity` accepts them; anything else raises
`ValueError` with Kubernetes' message. Used by validation (requests <= limits) and by the
node agent for resource accounting. Pure: no I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

QUANTITY_FMT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_ERROR = f"quantities must match the regular expression '{QUANTITY_FMT}'"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}
_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)")


def parse_quantity(value: str | int | float) -> Decimal:
    """The exact value of a quantity; ValueError (Kubernetes' wording) when malformed."""
    if isinstance(value, bool):
        raise ValueError(QUANTITY_ERROR)
    if isinstance(value, int | float):
        return Decimal(str(value))
    text = value.strip()
    m = re.fullmatch(QUANTITY_FMT, text)
    if not m or not _NUMBER_RE.fullmatch(m.group(1)):
        raise ValueError(QUANTITY_ERROR)
    number, suffix = Decimal(m.group(1)), m.group(2)
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    if re.fullmatch(r"[eE][-+]?\d+", suffix):
        try:
            return number * Decimal(10) ** int(suffix[1:])
        except (InvalidOperation, OverflowError) as exc:
            raise ValueError(QUANTITY_ERROR) from exc
    raise ValueError(QUANTITY_ERROR)


def is_quantity(value: object) -> bool:
    """Whether `value` (anything decoded from JSON) is a valid quantity: a string in quantity
    syntax or a number, not a boolean, null, list or object."""
    if not isinstance(value, str | int | float):
        return False
    try:
        parse_quantity(value)
    except ValueError:
        return False
    return True
