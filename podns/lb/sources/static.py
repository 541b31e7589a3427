"""A fixed endpoint list: for tests, and for services outside any cluster."""

from __future__ import annotations

from collections.abc import Iterable

from podns.lb.endpoint import Endpoint
from podns.lb.sources.base import Target, Update


class Static:
    """Serves the endpoints it was given; `set` replaces them (pushing the change)."""

    def __init__(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints = [self._parse(e) for e in endpoints]
        self._update: Update | None = None

    @staticmethod
    def _parse(e: Endpoint | str) -> Endpoint:
        if isinstance(e, Endpoint):
            return e
        host, _, port = e.rpartition(":")
        return Endpoint(address=host.strip("[]"), port=int(port))

    async def start(self, target: Target, update: Update) -> None:
        self._update = update
        update(list(self._endpoints), None if self._endpoints else "no endpoints configured")

    def set(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints = [self._parse(e) for e in endpoints]
        if self._update is not None:
            self._update(list(self._endpoints), None)

    async def refresh(self) -> None:
        return None

    async def close(self) -> None:
        self._update = None
