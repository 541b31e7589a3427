"""httpx transports that spread requests over a service's pods.

    async with Balancer("web", port="http", source=...) as pool:
        async with httpx.AsyncClient(transport=AsyncTransport(pool)) as http:
            await http.get("http://web/items")      # goes to one ready pod

Each request goes to a picked endpoint (the URL's host and port are replaced, the Host header
keeps the service name). A connection failure is reported to the pool and, for idempotent
methods, retried on another pod. httpx is imported here only: it is the optional extra
`podns[httpx]`, and importing this module without it says so.
"""

from __future__ import annotations

try:
    import httpx
except ImportError as exc:  # an optional dependency: name the extra instead of a bare module error
    raise ImportError("podns.lb.transport needs httpx: pip install 'podns[httpx]'") from exc

from podns.lb.balancer import Attempts, Balancer
from podns.lb.endpoint import Endpoint
from podns.lb.syncbalancer import SyncBalancer

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout)


def _retarget(request: httpx.Request, ep: Endpoint) -> None:
    host = f"[{ep.address}]" if ":" in ep.address else ep.address
    request.headers.setdefault("Host", request.url.netloc.decode())
    request.url = request.url.copy_with(host=host.strip("[]"), port=ep.port)


class AsyncTransport(httpx.AsyncBaseTransport):
    """An httpx async transport over a `Balancer`."""

    def __init__(self, pool: Balancer, *, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.pool = pool
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempts = Attempts(self.pool, tries=None if request.method in IDEMPOTENT else 1)
        for ep in attempts:
            _retarget(request, ep)
            with self.pool.track(ep):
                try:
                    response = await self.inner.handle_async_request(request)
                except RETRYABLE as exc:
                    attempts.failed(ep, exc)
                    continue
            self.pool.report_success(ep)
            return response
        raise attempts.error(f"{request.method} {request.url.path} on")

    async def aclose(self) -> None:
        await self.inner.aclose()


class Transport(httpx.BaseTransport):
    """An httpx transport over a `SyncBalancer`."""

    def __init__(self, pool: SyncBalancer, *, inner: httpx.BaseTransport | None = None) -> None:
        self.pool = pool
        self.inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        bal = self.pool.balancer
        tries = None if request.method in IDEMPOTENT else 1
        attempts = Attempts(bal, tries=tries, report=self.pool.report_failure)
        for ep in attempts:
            _retarget(request, ep)
            with bal.track(ep):
                try:
                    response = self.inner.handle_request(request)
                except RETRYABLE as exc:
                    attempts.failed(ep, exc)
                    continue
            bal.report_success(ep)
            return response
        raise attempts.error(f"{request.method} {request.url.path} on")

    def close(self) -> None:
        self.inner.close()
