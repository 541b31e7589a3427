"""RFC 3339 timestamps at the three precisions Kubernetes writes, and back."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from podns.objects import times

WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC).timestamp()


def test_formats() -> None:
    """Given a time, then it renders as metav1.Time, MicroTime and RFC3339Nano in UTC."""
    assert times.now_rfc3339(WHEN) == "2024-01-02T03:04:05Z"
    assert times.now_rfc3339_micro(WHEN) == "2024-01-02T03:04:05.123456Z"
    assert times.now_rfc3339_nano(WHEN).startswith("2024-01-02T03:04:05.123456")
    assert len(times.now_rfc3339_nano(WHEN)) == len("2024-01-02T03:04:05.123456789Z")


def test_now_is_now() -> None:
    """Given no time, then each format renders the current time."""
    for fmt in (times.now_rfc3339, times.now_rfc3339_micro, times.now_rfc3339_nano):
        parsed = times.parse_time(fmt())
        assert parsed is not None and abs(parsed - time.time()) < 2


@pytest.mark.parametrize(
    ("text", "want"),
    [("2024-01-02T03:04:05Z", int(WHEN)), ("2024-01-02T04:04:05+01:00", int(WHEN)),
     ("2024-01-02T03:04:05.123456789Z", WHEN), ("2024-01-02t03:04:05z", int(WHEN))],
    ids=["zulu", "offset", "nanos", "lowercase"],
)
def test_parse(text: str, want: float) -> None:
    """Given RFC 3339 timestamps, then parse_time returns their seconds since the epoch."""
    assert times.parse_time(text) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("value", [None, "", "yesterday", "2024-01-02T03:04:05", 17],
                         ids=["none", "empty", "words", "no-zone", "not-a-string"])
def test_parse_refuses(value: object) -> None:
    """Given no timestamp, a malformed one or one without a zone, then parse_time is None."""
    assert times.parse_time(value) is None
