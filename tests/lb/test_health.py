"""Passive outlier ejection with an injected clock."""

from __future__ import annotations

from podns.lb.health import OutlierConfig, OutlierDetector


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consecutive_failures_eject_with_growing_backoff() -> None:
    """given 3 consecutive failures, the endpoint is ejected for 1 s, then 2 s after a relapse."""
    clock = Clock()
    d = OutlierDetector(OutlierConfig(consecutive_failures=3, base_ejection=1.0), clock)
    assert not d.record_failure("a")
    assert not d.record_failure("a")
    assert d.record_failure("a")
    assert d.is_ejected("a")
    clock.now += 1.01
    assert not d.is_ejected("a")
    # On probation: one more failure ejects again, for twice as long.
    assert d.record_failure("a")
    clock.now += 1.5
    assert d.is_ejected("a")
    clock.now += 0.6
    assert not d.is_ejected("a")


def test_success_resets_the_streak() -> None:
    clock = Clock()
    d = OutlierDetector(OutlierConfig(consecutive_failures=2), clock)
    d.record_failure("a")
    d.record_success("a")
    assert not d.record_failure("a")
    assert not d.is_ejected("a")


def test_ejection_is_capped() -> None:
    clock = Clock()
    d = OutlierDetector(OutlierConfig(consecutive_failures=1, base_ejection=10, max_ejection=15), clock)
    for _ in range(5):
        assert d.record_failure("a")
        clock.now += 15.01
    d.record_failure("a")
    clock.now += 14.9
    assert d.is_ejected("a")


def test_forget_drops_departed_endpoints() -> None:
    d = OutlierDetector(OutlierConfig(consecutive_failures=1), Clock())
    d.record_failure("a")
    d.forget({"b"})
    assert not d.is_ejected("a")
