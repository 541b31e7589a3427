"""Cell formatting shared by the kinds' printer columns, as kubectl prints them.

`human_duration` is apimachinery's `duration.HumanDuration` (`5s`, `3m2s`, `2d3h`) and
`since` is the printers' `translateTimestampSince` (`<unknown>` for a missing time). The clock
is `time.time`, replaceable through `set_clock` so table tests can freeze it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from podns.api.resources.base import Column
from podns.objects.times import parse_time

_clock: Callable[[], float] = time.time


def set_clock(clock: Callable[[], float] | None) -> None:
    """Replace the clock used for Age columns (None restores `time.time`)."""
    global _clock
    _clock = clock or time.time


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration: coarse, at most two units, `<invalid>` for the far past."""
    secs = int(seconds)
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(timestamp: Any) -> str:
    """Age of an RFC 3339 timestamp, `<unknown>` when absent or unparsable."""
    then = parse_time(timestamp)
    return "<unknown>" if then is None else human_duration(_clock() - then)


def seconds_since(timestamp: Any) -> float | None:
    then = parse_time(timestamp)
    return None if then is None else _clock() - then


def format_labels(labels: Mapping[str, str] | None) -> str:
    """`labels.FormatLabels`: sorted `k=v` joined by ',', `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def list_with_more(items: Iterable[str], limit: int = 3, empty: str = "<unset>") -> str:
    """The first `limit` items joined by ',' then ` + N more...`, as kubectl abbreviates."""
    all_items = list(items)
    shown = ",".join(all_items[:limit])
    if len(all_items) > limit:
        return f"{shown} + {len(all_items) - limit} more..."
    return shown or empty


def or_none(value: Any) -> str:
    return str(value) if value not in (None, "") else "<none>"


def _age_column() -> Column:
    return Column(
        "Age",
        description=(
            "CreationTimestamp is a timestamp representing the server time when this object was created."
        ),
    )


#: the Age column every kind shows (its cell is filled in by the table renderer)
AGE = _age_column()
