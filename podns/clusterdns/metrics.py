"""Prometheus metrics for cluster DNS, and the /metrics, /health, /ready HTTP endpoint.

Counting is designed around the fast path: every precomputed answer knows its metric *cell*
(protocol x query type x rcode x response-size bucket) in advance, so counting a request is one
list increment (`counts[cell] += 1`); the text exposition folds cells into the
`podns_dns_requests_total`, `podns_dns_responses_total` and `podns_dns_response_size_bytes`
families when scraped. Request latency is sampled (1 query in `LATENCY_SAMPLE` on the UDP fast
path, every query elsewhere): timing each query would cost more than answering it.

`podns_dns_programming_duration_seconds` follows CoreDNS's
`coredns_kubernetes_dns_programming_duration_seconds`: from the EndpointSlice's
`endpoints.kubernetes.io/last-change-trigger-time` annotation to the moment the changed answer
is in the serving table, labelled by `service_kind`.

The HTTP endpoint is a deliberately tiny asyncio HTTP/1.0 responder (three fixed paths, GET
only): it needs no web framework and cannot be made to stream or hold state.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Callable

from podns.clusterdns import wire

#: one query in this many is timed on the UDP fast path (power of two: cheap countdown)
LATENCY_SAMPLE = 32

_TYPES = [wire.A, wire.AAAA, wire.SRV, wire.PTR, wire.TXT, wire.CNAME, wire.SOA, wire.NS, wire.MX,
          wire.ANY, wire.AXFR, wire.IXFR]
_TYPE_INDEX = {t: i for i, t in enumerate(_TYPES)}
_NT = len(_TYPES) + 1  # + "other"
_RCODES = [0, 1, 2, 3, 4, 5]
_NR = len(_RCODES) + 1
#: response size buckets (bytes), as CoreDNS's dns_response_size_bytes
SIZE_BUCKETS = [0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000, 64000]
_NB = len(SIZE_BUCKETS) + 1
_PROTOS = ["udp", "tcp"]
#: request latency buckets (seconds): finer than CoreDNS's at the low end, where we live
LATENCY_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008,
                   0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192]
#: DNS programming latency buckets (seconds)
PROGRAMMING_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60]


class Histogram:
    """A cumulative-on-render histogram with fixed buckets."""

    __slots__ = ("buckets", "counts", "sum", "total")

    def __init__(self, buckets: list[float]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += 1
        self.sum += value

    def render(self, name: str, labels: str = "") -> list[str]:
        out = []
        acc = 0
        sep = "," if labels else ""
        for bound, count in zip(self.buckets, self.counts, strict=False):
            acc += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {acc}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.total}')
        lab = f"{{{labels}}}" if labels else ""
        out.append(f"{name}_sum{lab} {self.sum:.9g}")
        out.append(f"{name}_count{lab} {self.total}")
        return out


class Metrics:
    """All DNS metrics of one server process. Writers: the serving thread and the event loop."""

    def __init__(self) -> None:
        self.counts = [0] * (len(_PROTOS) * _NT * _NR * _NB)
        self.latency = {p: Histogram(LATENCY_BUCKETS) for p in _PROTOS}
        self.programming: dict[str, Histogram] = {}
        self.dropped = 0
        self.forwarded = 0
        self.forward_errors = 0
        self.forward_rejections = 0
        #: callables returning gauge values, registered by the wiring (index sizes, sync age)
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    @staticmethod
    def cell(qtype: int, rcode: int, size: int, proto: str) -> int:
        t = _TYPE_INDEX.get(qtype, _NT - 1)
        r = rcode if 0 <= rcode < len(_RCODES) else _NR - 1
        b = bisect.bisect_left(SIZE_BUCKETS, size)
        return ((_PROTOS.index(proto) * _NT + t) * _NR + r) * _NB + b

    def count(self, qtype: int, rcode: int, size: int, proto: str) -> None:
        self.counts[self.cell(qtype, rcode, size, proto)] += 1

    def observe_programming(self, seconds: float, service_kind: str) -> None:
        hist = self.programming.get(service_kind)
        if hist is None:
            hist = self.programming[service_kind] = Histogram(PROGRAMMING_BUCKETS)
        hist.observe(max(0.0, seconds))

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, fn)

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4."""
        requests: dict[tuple[str, str], int] = {}
        responses: dict[tuple[str, str], int] = {}
        sizes = {p: [0] * _NB for p in _PROTOS}
        for idx, n in enumerate(self.counts):
            if not n:
                continue
            rest, b = divmod(idx, _NB)
            rest, r = divmod(rest, _NR)
            p, t = divmod(rest, _NT)
            proto = _PROTOS[p]
            tname = wire.TYPE_NAMES.get(_TYPES[t], "other") if t < len(_TYPES) else "other"
            rname = wire.RCODE_NAMES.get(_RCODES[r], "other") if r < len(_RCODES) else "other"
            requests[(proto, tname)] = requests.get((proto, tname), 0) + n
            responses[(proto, rname)] = responses.get((proto, rname), 0) + n
            sizes[proto][b] += n
        lines = ["# HELP podns_dns_requests_total DNS requests by transport and query type.",
                 "# TYPE podns_dns_requests_total counter"]
        lines += [f'podns_dns_requests_total{{proto="{p}",type="{t}"}} {n}'
                  for (p, t), n in sorted(requests.items())]
        lines += ["# HELP podns_dns_responses_total DNS responses by transport and rcode.",
                  "# TYPE podns_dns_responses_total counter"]
        lines += [f'podns_dns_responses_total{{proto="{p}",rcode="{r}"}} {n}'
                  for (p, r), n in sorted(responses.items())]
        lines += ["# HELP podns_dns_response_size_bytes Size of DNS responses.",
                  "# TYPE podns_dns_response_size_bytes histogram"]
        for proto in _PROTOS:
            hist = Histogram([float(b) for b in SIZE_BUCKETS])
            hist.counts = sizes[proto]
            hist.total = sum(sizes[proto])
            lines += [x for x in hist.render("podns_dns_response_size_bytes", f'proto="{proto}"')
                      if "_sum" not in x]
        lines += ["# HELP podns_dns_request_duration_seconds DNS request latency "
                  "(sampled on the UDP fast path).",
                  "# TYPE podns_dns_request_duration_seconds histogram"]
        for proto in _PROTOS:
            lines += self.latency[proto].render("podns_dns_request_duration_seconds", f'proto="{proto}"')
        lines += ["# HELP podns_dns_programming_duration_seconds From an EndpointSlice's "
                  "last-change-trigger-time to the answer being served.",
                  "# TYPE podns_dns_programming_duration_seconds histogram"]
        for kind, hist in sorted(self.programming.items()):
            lines += hist.render("podns_dns_programming_duration_seconds", f'service_kind="{kind}"')
        for name, help_text, value in (
                ("podns_dns_dropped_total", "Packets dropped unanswered (garbage, QR=1).", self.dropped),
                ("podns_dns_forwarded_total", "Queries forwarded upstream.", self.forwarded),
                ("podns_dns_forward_errors_total", "Forwarded queries that failed.", self.forward_errors),
                ("podns_dns_forward_max_concurrent_rejections_total",
                 "Queries answered SERVFAIL because the in-flight forward limit was reached.",
                 self.forward_rejections)):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name} {value}"]
        for name, (help_text, fn) in sorted(self.gauges.items()):
            try:
                reading = fn()
            except Exception:  # a broken gauge must not break the scrape
                continue
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {reading:.6g}"]
        return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics, /health (process alive) and /ready (informers synced: 200, else 503)."""

    def __init__(self, metrics: Metrics, ready: Callable[[], bool]) -> None:
        self.metrics = metrics
        self.ready = ready
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port)
        addr = self.server.sockets[0].getsockname()
        return addr[0], addr[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            parts = request.split(b" ", 2)
            method, path = parts[0], (parts[1] if len(parts) > 1 else b"/")
            path = path.split(b"?", 1)[0]
            if method != b"GET":
                status, body, ctype = "405 Method Not Allowed", "method not allowed\n", "text/plain"
            elif path == b"/metrics":
                status, body, ctype = "200 OK", self.metrics.render(), "text/plain; version=0.0.4"
            elif path == b"/health":
                status, body, ctype = "200 OK", "OK\n", "text/plain"
            elif path == b"/ready":
                ok = self.ready()
                status = "200 OK" if ok else "503 Service Unavailable"
                body, ctype = ("OK\n" if ok else "not synced\n"), "text/plain"
            else:
                status, body, ctype = "404 Not Found", "not found\n", "text/plain"
            data = body.encode()
            writer.write(f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()
