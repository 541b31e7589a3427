"""Timestamps as Kubernetes writes and reads them (RFC 3339, UTC).

Three precisions, one spelling each: `now_rfc3339` (metav1.Time, seconds: creation, transition
and heartbeat times, events), `now_rfc3339_micro` (metav1.MicroTime: Lease renew times,
events.k8s.io) and `now_rfc3339_nano` (RFC3339Nano: container log lines, as the CRI writes
them). `parse_time` reads any of them back. Times in podns code are seconds since the epoch
(`time.time()` floats); these functions convert at the edge of an object.
"""

from __future__ import annotations

import datetime as dt
import time


def now_rfc3339(at: float | None = None) -> str:
    """`at` (seconds since the epoch; None = now) as metav1.Time: `2024-01-02T03:04:05Z`."""
    when = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339_micro(at: float | None = None) -> str:
    """`at` (seconds since the epoch; None = now) as metav1.MicroTime:
    `2024-01-02T03:04:05.123456Z`."""
    when = dt.datetime.now(dt.UTC) if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339_nano(at: float | None = None) -> str:
    """`at` (seconds since the epoch; None = now, read in nanoseconds) as RFC3339Nano:
    `2024-01-02T03:04:05.123456789Z`."""
    ns = time.time_ns() if at is None else int(at * 1e9)
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_time(value: object) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (`Z` or an offset, any fraction up to
    nanoseconds); None when `value` is absent, not a string, or not such a timestamp (a time
    without a zone is not one: its meaning would depend on this machine's zone)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()
