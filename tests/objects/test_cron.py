"""Cron schedules: parsing (robfig/cron `ParseStandard`) and next activation times."""

from __future__ import annotations

import datetime as dt

import pytest

from podns.objects.cron import CronError, parse, zone


def ts(text: str, tz: str = "UTC") -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=zone(tz)).timestamp()


@pytest.mark.parametrize(("spec", "after", "want"), [
    ("*/1 * * * *", "2026-03-01T10:00:30", "2026-03-01T10:01:00"),
    ("*/15 * * * *", "2026-03-01T10:01:00", "2026-03-01T10:15:00"),
    ("0 9 * * MON-FRI", "2026-03-06T09:00:00", "2026-03-09T09:00:00"),  # Friday -> Monday
    ("30 2 1 * *", "2026-03-01T03:00:00", "2026-04-01T02:30:00"),
    ("0 0 13 * 5", "2026-03-01T00:00:00", "2026-03-06T00:00:00"),  # dom OR dow: Friday 6th
    ("@hourly", "2026-03-01T10:59:59", "2026-03-01T11:00:00"),
    ("@yearly", "2026-03-01T00:00:00", "2027-01-01T00:00:00"),
    ("5/20 * * * *", "2026-03-01T10:06:00", "2026-03-01T10:25:00"),
    ("0 12 * JAN,jul ?", "2026-03-01T00:00:00", "2026-07-01T12:00:00"),
], ids=["every-minute", "step", "weekdays", "monthly", "dom-or-dow", "hourly", "yearly",
        "start-step", "names"])
def test_next(spec: str, after: str, want: str) -> None:
    """Given a schedule, then the next activation is the first matching minute after."""
    assert parse(spec).next(ts(after)) == ts(want)


def test_time_zone() -> None:
    """Given `0 9 * * *` in Europe/Berlin, then it fires at 08:00 UTC in winter, 07:00 in summer."""
    berlin = zone("Europe/Berlin")
    assert parse("0 9 * * *").next(ts("2026-01-10T00:00:00"), berlin) == ts("2026-01-10T08:00:00")
    assert parse("0 9 * * *").next(ts("2026-07-10T00:00:00"), berlin) == ts("2026-07-10T07:00:00")


def test_every_and_missed_times() -> None:
    """`@every 90s` adds 90 s; times_between counts missed activations and keeps the latest."""
    assert parse("@every 1m30s").next(100.0) == 190.0
    found, count = parse("*/1 * * * *").times_between(ts("2026-03-01T10:00:00"),
                                                       ts("2026-03-01T10:10:00"), zone("UTC"), 100)
    assert count == 10 and found[-1] == ts("2026-03-01T10:10:00")
    found, count = parse("*/1 * * * *").times_between(0, 10_000_000, zone("UTC"), 3)
    assert count == 4 and len(found) == 3


@pytest.mark.parametrize("spec", ["", "* * * *", "61 * * * *", "* * * * 8", "*/0 * * * *", "@often",
                                  "TZ=UTC * * * * *", "a * * * *", "5-1 * * * *", "@every x"])
def test_invalid(spec: str) -> None:
    """Invalid schedules raise CronError."""
    with pytest.raises(CronError):
        parse(spec)


def test_unknown_zone() -> None:
    with pytest.raises(CronError):
        zone("Mars/Olympus")
