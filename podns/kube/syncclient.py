"""`SyncClient`: the async `Client` behind a blocking facade, for code without an event loop.

The CLI and synchronous applications using `podns.lb` want plain calls. Rather than a second
HTTP stack, `SyncClient` runs one `Client` on a private event loop in a daemon thread and hands
each call to it (`run_coroutine_threadsafe`), so failover, retries, TLS and error mapping are
exactly the async client's. Do not call it from inside a running event loop's thread with a
server on that same loop (it would block the loop it waits for); use `Client` there.
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from podns.kube.client import Client, WatchEvent
from podns.kube.config import Config, load_config
from podns.kube.resources import Resource

T = TypeVar("T")
Obj = dict[str, Any]
_END = object()


class SyncClient:
    """Blocking twin of `Client`: same methods and arguments, results returned directly."""

    def __init__(self, config: Config, *, timeout: float | None = 120.0) -> None:
        self.config = config
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="podns-kube-sync",
                                        daemon=True)
        self._thread.start()
        self._client = Client(config)

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, *,
                        context: str | None = None, servers: list[str] | None = None
                        ) -> SyncClient:
        return cls(load_config(path, context, servers=servers))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("SyncClient is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the private loop."""
        if self._loop.is_closed():
            return
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    # -- verbs (see Client for the contracts) --------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Obj:
        return self._run(self._client.get(resource, name, namespace))

    def list(self, resource: Resource, namespace: str | None = None, **kwargs: Any) -> Obj:
        return self._run(self._client.list(resource, namespace, **kwargs))

    def list_all(self, resource: Resource, namespace: str | None = None, **kwargs: Any) -> Obj:
        return self._run(self._client.list_all(resource, namespace, **kwargs))

    def create(self, resource: Resource, obj: Obj, namespace: str | None = None, **kwargs: Any
               ) -> Obj:
        return self._run(self._client.create(resource, obj, namespace, **kwargs))

    def update(self, resource: Resource, obj: Obj, namespace: str | None = None, **kwargs: Any
               ) -> Obj:
        return self._run(self._client.update(resource, obj, namespace, **kwargs))

    def update_status(self, resource: Resource, obj: Obj) -> Obj:
        return self._run(self._client.update_status(resource, obj))

    def patch(self, resource: Resource, name: str, body: Any, namespace: str | None = None,
              **kwargs: Any) -> Obj:
        return self._run(self._client.patch(resource, name, body, namespace, **kwargs))

    def delete(self, resource: Resource, name: str, namespace: str | None = None,
               **kwargs: Any) -> Obj:
        return self._run(self._client.delete(resource, name, namespace, **kwargs))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._run(self._client.request(method, path, **kwargs))

    def watch(self, resource: Resource, namespace: str | None = None, **kwargs: Any
              ) -> Iterator[WatchEvent]:
        """Iterate watch events; errors raise from the iterator. Closing the iterator (or
        leaving a `for` loop) stops the watch."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()  # unbounded: put never blocks

        async def pump() -> None:
            try:
                async for event in self._client.watch(resource, namespace, **kwargs):
                    events.put(event)
            except BaseException as exc:  # handed to the consumer, including cancellation
                events.put(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                events.put(_END)

        future = asyncio.run_coroutine_threadsafe(pump(), self._loop)
        try:
            while True:
                item = events.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            future.cancel()


__all__ = ["SyncClient"]
