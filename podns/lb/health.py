"""Passive outlier ejection: endpoints that keep failing are taken out of rotation for a while.

Consecutive connect failures (`consecutive_failures`, default 3) eject an endpoint for
`base_ejection` seconds times the number of times it has been ejected before (1 s, 2 s, 3 s ...,
capped at `max_ejection`), as Envoy's outlier detection does. When the time is up the endpoint
is re-admitted on probation: one more failure ejects it again for longer; a success clears its
failure streak, and a long healthy period forgets its ejection history.

Time comes from an injected clock so the behaviour is testable without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class OutlierConfig:
    """Knobs of passive ejection (seconds)."""

    consecutive_failures: int = 3
    base_ejection: float = 1.0
    max_ejection: float = 30.0
    #: healthy time after which an endpoint's ejection count is forgotten
    forget_after: float = 60.0


@dataclass(slots=True)
class _State:
    failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    last_ejected: float = 0.0
    probation: bool = False


@dataclass(slots=True)
class OutlierDetector:
    """Tracks failures per endpoint key and says which endpoints are ejected now."""

    config: OutlierConfig = field(default_factory=OutlierConfig)
    clock: Callable[[], float] = time.monotonic
    _states: dict[str, _State] = field(default_factory=dict)

    def is_ejected(self, key: str) -> bool:
        st = self._states.get(key)
        return st is not None and st.ejected_until > self.clock()

    def ejected_keys(self) -> set[str]:
        now = self.clock()
        return {k for k, st in self._states.items() if st.ejected_until > now}

    def record_success(self, key: str) -> None:
        st = self._states.get(key)
        if st is None:
            return
        st.failures = 0
        st.probation = False
        if st.ejections and self.clock() - st.last_ejected > self.config.forget_after:
            st.ejections = 0

    def record_failure(self, key: str) -> bool:
        """Count one failure; returns True when this failure ejected the endpoint."""
        now = self.clock()
        st = self._states.setdefault(key, _State())
        if st.ejected_until > now:
            return False
        if st.probation and st.ejected_until <= now and st.ejections:
            return self._eject(st, now)
        st.failures += 1
        if st.failures >= self.config.consecutive_failures:
            return self._eject(st, now)
        return False

    def eject(self, key: str) -> bool:
        """Eject now (an active health check failed); True when it was not ejected already."""
        now = self.clock()
        st = self._states.setdefault(key, _State())
        if st.ejected_until > now:
            return False
        return self._eject(st, now)

    def readmit(self, key: str) -> None:
        """End an ejection early (an active health check passed)."""
        st = self._states.get(key)
        if st is not None:
            st.ejected_until = 0.0
            st.failures = 0

    def forget(self, keep: set[str]) -> None:
        """Drop state of endpoints that left the pool."""
        for k in list(self._states):
            if k not in keep:
                del self._states[k]

    def _eject(self, st: _State, now: float) -> bool:
        st.ejections += 1
        duration = min(self.config.base_ejection * st.ejections, self.config.max_ejection)
        st.ejected_until = now + duration
        st.last_ejected = now
        st.failures = 0
        st.probation = True
        return True
