"""Shared informers: one informer per (resource, namespace, label selector) for the whole
controller manager, so five controllers watching pods cost one watch, not five (client-go's
`SharedInformerFactory`)."""

from __future__ import annotations

import asyncio

from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import Resource


class SharedInformers:
    """The informer factory of one controller manager: `get` returns the one informer for a
    resource (created on first use), `start` runs all of them, `stop` ends them."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[Resource, str | None, str | None], Informer] = {}
        self._started = False

    def get(self, resource: Resource, namespace: str | None = None, *,
            label_selector: str | None = None) -> Informer:
        key = (resource, namespace, label_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = Informer(self.client, resource, namespace, label_selector=label_selector)
            self._informers[key] = informer
            if self._started:
                informer.start()
        return informer

    def start(self) -> None:
        self._started = True
        for informer in self._informers.values():
            informer.start()

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until every informer has listed once (raises TimeoutError after `timeout`)."""
        await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))

    @property
    def has_synced(self) -> bool:
        return all(i.has_synced for i in self._informers.values())

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
        self._started = False
