"""Cron schedules as CronJobs write them (robfig/cron v3 `ParseStandard`, which Kubernetes uses).

Pure. `parse(text)` accepts five fields — minute (0-59), hour (0-23), day of month (1-31),
month (1-12 or JAN-DEC), day of week (0-6 or SUN-SAT) — each `*`, `?`, a value, a range `a-b`,
a step `*/n`, `a-b/n` or `a/n` (from `a` to the maximum), or a comma list of those; and the
descriptors `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`), `@hourly`,
`@every <duration>` (`1h30m`, `90s`). When both day fields are restricted a time matches either
(cron's rule); when one is `*` or `?` both must match. Invalid text raises `CronError` with
robfig's wording. `Schedule.next(after, tz)` is the first time strictly after `after` (seconds
since the epoch), computed in time zone `tz`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

#: (min, max) of each field
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                        "oct", "nov", "dec"))},
    {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
)
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class CronError(ValueError):
    """A schedule that cannot be parsed."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule: allowed values per field, whether each day field was `*`/`?`, or a
    fixed interval (`@every`)."""

    fields: tuple[frozenset[int], ...] = ()
    dom_star: bool = False
    dow_star: bool = False
    every: float = 0.0

    def next(self, after: float, tz: dt.tzinfo = dt.UTC) -> float:
        """The first activation strictly after `after` (seconds since the epoch)."""
        if self.every:
            return float(int(after)) + max(1.0, self.every)  # robfig: whole seconds, at least 1
        start = dt.datetime.fromtimestamp(after, tz).replace(second=0, microsecond=0, tzinfo=None)
        t = start + dt.timedelta(minutes=1)
        minutes, hours, _, months, _ = self.fields
        limit = start + dt.timedelta(days=366 * 5)
        while t <= limit:
            if t.month not in months:
                t = (t.replace(day=1, hour=0, minute=0) + dt.timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + dt.timedelta(days=1)
                continue
            if t.hour not in hours:
                t = t.replace(minute=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in minutes:
                t += dt.timedelta(minutes=1)
                continue
            stamp = t.replace(tzinfo=tz).timestamp()
            if stamp > after:
                return stamp
            t += dt.timedelta(minutes=1)
        raise CronError("no activation within five years")

    def _day_matches(self, t: dt.datetime) -> bool:
        dom = t.day in self.fields[2]
        dow = (t.isoweekday() % 7) in self.fields[4]
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def times_between(self, start: float, end: float, tz: dt.tzinfo, limit: int) -> tuple[list[float], int]:
        """Activations in (start, end], at most `limit` of them kept (the latest), and how many
        there were (counting stops at `limit + 1`)."""
        found: list[float] = []
        count = 0
        t = start
        while True:
            t = self.next(t, tz)
            if t > end:
                return found, count
            count += 1
            found.append(t)
            if len(found) > limit:
                found.pop(0)
            if count > limit:
                return found, count


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    lo, hi = _BOUNDS[index]
    values: set[int] = set()
    star = False
    for part in text.split(","):
        range_part, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"invalid step: {part}")
            step = int(step_text)
        if range_part in ("*", "?"):
            start, end = lo, hi
            star = star or step == 1
        else:
            a, dash, b = range_part.partition("-")
            start = _value(a, index)
            end = _value(b, index) if dash else (hi if step_text else start)
        if start < lo or end > hi or start > end:
            raise CronError(f"end of range ({end}) above maximum ({hi}): {part}" if end > hi else
                            f"beginning of range ({start}) below minimum ({lo}): {part}" if start < lo else
                            f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def _value(text: str, index: int) -> int:
    named = _NAMES[index].get(text.lower())
    if named is not None:
        return named
    if not text.isdigit():
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def _duration(text: str) -> float:
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise CronError(f"failed to parse duration @every {text}: time: invalid duration \"{text}\"")
    return total


def parse(text: str) -> Schedule:
    """Parse a CronJob schedule; raises `CronError`."""
    text = text.strip()
    if not text:
        raise CronError("empty spec string")
    if text.startswith("TZ=") or text.startswith("CRON_TZ="):
        raise CronError("time zone in schedule is not supported: use spec.timeZone")
    if text.startswith("@every "):
        return Schedule(every=_duration(text[len("@every "):].strip()))
    if text.startswith("@"):
        if text not in _DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = _DESCRIPTORS[text]
    parts = text.split()
    if len(parts) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(parts)}: {parts}")
    parsed = [_field(p, i) for i, p in enumerate(parts)]
    return Schedule(fields=tuple(f for f, _ in parsed), dom_star=parsed[2][1], dow_star=parsed[4][1])


class _Local(dt.tzinfo):
    """The process's local time zone with its daylight-saving rules (the C library's), as
    kube-controller-manager schedules CronJobs without `timeZone` in its own zone."""

    def utcoffset(self, when: dt.datetime | None) -> dt.timedelta:
        if when is None:
            return dt.timedelta(seconds=-time.timezone)
        stamp = time.mktime((*when.timetuple()[:8], -1))
        return dt.timedelta(seconds=time.localtime(stamp).tm_gmtoff)

    def dst(self, when: dt.datetime | None) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, when: dt.datetime | None) -> str:
        return time.tzname[0]


LOCAL: dt.tzinfo = _Local()


def zone(name: str | None) -> dt.tzinfo:
    """The time zone named `name` (IANA), the local one for None/""; raises CronError when
    unknown."""
    if not name:
        return LOCAL
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, LookupError) as exc:
        raise CronError(f"unknown time zone {name}") from exc


__all__ = ["CronError", "Schedule", "parse", "zone"]
