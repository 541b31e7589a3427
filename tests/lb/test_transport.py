"""The httpx transports spread requests over real HTTP servers and skip dead pods."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web

from podns import lb
from podns.lb.endpoint import Endpoint
from podns.lb.transport import AsyncTransport


@pytest.fixture
async def http_pods() -> AsyncIterator[list[Endpoint]]:
    runners = []
    eps = []
    for i in range(3):
        async def hello(request: web.Request, i: int = i) -> web.Response:
            return web.Response(text=f"pod-{i} host={request.headers['Host']}")

        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, f"127.0.3.{i + 1}", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runners.append(runner)
        eps.append(Endpoint(f"127.0.3.{i + 1}", port, hostname=f"pod-{i}"))
    yield eps
    for r in runners:
        await r.cleanup()


async def test_requests_are_spread_and_keep_the_service_host(http_pods: list[Endpoint]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = Endpoint("127.0.0.1", s.getsockname()[1], hostname="dead")
    pool = lb.Balancer("web", source=lb.Static([dead, *http_pods]), policy="round_robin")
    async with pool, httpx.AsyncClient(transport=AsyncTransport(pool)) as http:
        bodies = Counter()
        for _ in range(30):
            r = await http.get("http://web.default.svc:8080/")
            assert r.status_code == 200
            pod, host = r.text.split()
            assert host == "host=web.default.svc:8080"
            bodies[pod] += 1
    assert set(bodies) == {"pod-0", "pod-1", "pod-2"}
    assert sum(bodies.values()) == 30
