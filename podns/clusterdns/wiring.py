"""The cluster DNS server as a whole: informers -> index -> UDP/TCP server, plus metrics.

`ClusterDNS(config, client)` wires the parts; `start()` starts the informers (Services,
EndpointSlices, Namespaces, StatefulSets, and Pods unless `--pods disabled`), the DNS server
and the metrics endpoint, and marks the index synced once every informer has listed. Until
then in-zone questions get SERVFAIL. When the API becomes unreachable the informers keep
their caches, the index keeps serving the last state, and `podns_dns_api_connected` drops to 0
while `podns_dns_seconds_since_last_sync` grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import gc
import logging
import sys
import time
from typing import Any

from podns.clusterdns import trimmed
from podns.clusterdns.config import Config
from podns.clusterdns.forward import Forwarder, is_self
from podns.clusterdns.handler import Handler
from podns.clusterdns.index import RecordIndex
from podns.clusterdns.metrics import Metrics, MetricsServer
from podns.clusterdns.server import DNSServer
from podns.kube import resources
from podns.kube.informer import Informer

log = logging.getLogger(__name__)

#: seconds the cyclic GC may stay paused while waiting for the first lists
GC_PAUSE_LIMIT = 30.0


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc `malloc_trim`; elsewhere nothing).

    The first lists parse every object in full and keep only the trimmed copy: what they freed
    stays in the process (RSS) unless trimmed, and it is never needed again at that size."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class ClusterDNS:
    def __init__(self, config: Config, client: Any) -> None:
        self.config = config
        self.client = client
        self.metrics = Metrics()
        upstreams = [u for u in config.upstreams if not is_self(u, config.listen)]
        self.forwarder = Forwarder(upstreams) if upstreams else None
        self.index = RecordIndex(zone=config.zone, ttl=config.ttl, pods=config.pods, metrics=self.metrics,
                                 recursion=self.forwarder is not None)
        ns_addrs = (config.listen[0],) if config.listen[0] not in ("0.0.0.0", "::", "") else ()
        self.handler = Handler(self.index, self.metrics, upstream=self.forwarder is not None,
                               ns_addrs=ns_addrs)
        self.server = DNSServer(self.index, self.handler, self.metrics, forwarder=self.forwarder,
                                reuse_port=config.workers > 1 or config.worker)
        self.metrics_server = MetricsServer(self.metrics, lambda: self.index.synced)
        self.informers: list[Informer] = []
        self.dns_addr: tuple[str, int] = ("", 0)
        self.metrics_addr: tuple[str, int] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()

    def _informer(self, resource: Any, transform: Any, prefix: str) -> Informer:
        inf = Informer(self.client, resource, transform=transform, name=f"clusterdns:{resource.plural}")
        idx = self.index
        inf.add_handler(on_add=getattr(idx, f"on_{prefix}_add"),
                        on_update=getattr(idx, f"on_{prefix}_update"),
                        on_delete=getattr(idx, f"on_{prefix}_delete"))
        self.informers.append(inf)
        return inf

    async def start(self) -> None:
        """Start serving (SERVFAIL in the zone until synced) and the informers."""
        self._informer(resources.SERVICES, trimmed.trim_service, "service")
        self._informer(resources.ENDPOINTSLICES, trimmed.trim_slice, "slice")
        self._informer(resources.NAMESPACES, trimmed.trim_namespace, "namespace")
        self._informer(resources.STATEFULSETS, trimmed.trim_statefulset, "statefulset")
        if self.config.pods != "disabled":
            self._informer(resources.PODS, trimmed.trim_pod, "pod")
        self._gauges()
        if self.config.worker:  # an extra worker joins the shared port only once it has synced
            for inf in self.informers:
                inf.start()
            await self._wait_synced()
            self.dns_addr = await self.server.start(*self.config.listen)
            return
        self.dns_addr = await self.server.start(*self.config.listen)
        if self.config.metrics_addr is not None:
            self.metrics_addr = await self.metrics_server.start(*self.config.metrics_addr)
        for inf in self.informers:
            inf.start()
        self._sync_task = asyncio.create_task(self._wait_synced(), name="clusterdns:sync")

    async def _wait_synced(self) -> None:
        """Wait for every informer's first list, build the index, serve.

        The first lists and the build allocate ~10 container objects per endpoint, nearly all
        long-lived: the cyclic GC would walk the growing heap again and again (half the build
        time at 100k endpoints). It is paused until the build is done (seconds at most), then
        the synced state is frozen out of its reach for good, so a later full collection never
        walks 100k objects while queries wait. The few cyclic leftovers of the lists are frozen
        with it (the same RSS at 10k Services with or without a collection first)."""
        started = time.monotonic()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            lists = asyncio.gather(*(inf.wait_synced() for inf in self.informers))
            try:  # an API that stays unreachable must not keep the GC off for long
                await asyncio.wait_for(asyncio.shield(lists), GC_PAUSE_LIMIT)
            except TimeoutError:
                if was_enabled:
                    gc.enable()
                await lists
            listed = time.monotonic()
            gc.disable()
            self.index.mark_synced()
        finally:
            if was_enabled:
                gc.enable()
        self._synced.set()
        gc.freeze()  # no gc.collect() first: it walked ~1M objects (0.3 s) to find a few kB
        release_free_memory()
        log.info("cluster DNS synced in %.3f s (lists %.3f s, index %.3f s): %s", time.monotonic() - started,
                 listed - started, time.monotonic() - listed, self.index.stats())

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until every informer has listed (TimeoutError after `timeout` seconds)."""
        async with asyncio.timeout(timeout):
            await self._synced.wait()

    def _gauges(self) -> None:
        m, idx = self.metrics, self.index
        for key in ("services", "endpointslices", "pods", "statefulsets", "namespaces", "answers", "records"):
            m.gauge(f"podns_dns_{key}", f"{key.capitalize()} held by the DNS index.",
                    functools.partial(_stat, idx, key))
        m.gauge("podns_dns_api_connected", "1 when every informer's watch reaches the API server.",
                lambda: float(all(i.connected for i in self.informers)))
        m.gauge("podns_dns_seconds_since_last_sync",
                "Seconds since the DNS data was last known to match the API (0 while connected).",
                self._since_sync)
        m.gauge("podns_dns_synced", "1 once every informer has listed.", lambda: float(idx.synced))
        m.gauge("podns_dns_udp_compiled", "1 when UDP is served by the compiled loop (0: a Python loop; "
                "the log says why).", lambda: float(self.server.udp_loop == "compiled"))

    def _since_sync(self) -> float:
        if all(i.connected for i in self.informers):
            return 0.0
        oldest = min((max(i.last_event_time or 0.0, i.last_sync_time or 0.0) for i in self.informers),
                     default=0.0)
        return time.time() - oldest if oldest else float("inf")

    async def close(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()
        for inf in self.informers:
            with contextlib.suppress(Exception):
                await inf.stop()
        await self.server.close()
        await self.metrics_server.close()


def _stat(index: RecordIndex, key: str) -> float:
    """One of the index's counts, as a gauge reads it."""
    return float(index.stats()[key])
