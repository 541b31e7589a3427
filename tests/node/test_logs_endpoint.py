"""Container logs end to end without the API: a pod's process -> the agent's /containerLogs ->
`podns.api.handlers.podlog.proxy_pod_log` (as the API server uses it) -> an HTTP client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from podns.api.handlers.podlog import proxy_pod_log
from podns.api.statuserror import ApiError
from podns.node.server import make_app
from tests._support import serve_app
from tests.node.conftest import PY, FakeAgent, make_pod, node_pki

pytestmark = pytest.mark.timeout(30)

TICKER = "import time\nfor i in range(1000):\n    print('tick', i, flush=True); time.sleep(0.05)"


@pytest.fixture
async def cluster(agent: FakeAgent) -> AsyncIterator[tuple[FakeAgent, str, dict[str, Any]]]:
    """The fake agent's pods behind a real node endpoint, and an 'API server' app proxying to it."""
    def find(ns: str, pod: str, cname: str) -> Any:
        for w in agent.workers:
            if w.key == f"{ns}/{pod}":
                return next((r for r in w.runners + w.init_runners if r.name == cname), None), w.pod
        return None, None

    serving, client_tls = node_pki(agent.data_dir / "pki")
    node_runner, node_url = await serve_app(make_app(find, lambda: [w.pod for w in agent.workers]), serving)
    port = int(node_url.rsplit(":", 1)[1])
    node = {"metadata": {"name": "n1"}, "status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
    pods: dict[str, Any] = {}

    async def log_handler(request: web.Request) -> web.StreamResponse:
        try:
            return await proxy_pod_log(request, pods[request.match_info["name"]], node, client_tls)
        except ApiError as exc:
            return web.Response(status=exc.code, body=orjson.dumps(exc.status()),
                                content_type="application/json")

    api = web.Application()
    api.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", log_handler)
    api_runner, api_url = await serve_app(api)
    yield agent, api_url, pods
    await api_runner.cleanup()
    await node_runner.cleanup()


async def _get(url: str, **params: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, params=params) as r:
        return r.status, await r.text()


async def test_logs_tail_previous_follow(cluster: tuple[FakeAgent, str, dict[str, Any]]) -> None:
    """given a container that crashed once, logs show the current run, --previous the last one,
    tailLines limits, follow streams new lines as they are written."""
    agent, api, pods = cluster
    script = ("import os,sys,time\nf='crashed'\nif not os.path.exists(f):\n"
              "    open(f,'w').close(); print('first run'); sys.exit(1)\n" + TICKER)
    pod = make_pod("p", [{"name": "app", "command": [PY, "-c", script]}])
    pods["p"] = pod
    agent.start(pod)
    await agent.wait_for(lambda s: s["containerStatuses"][0]["restartCount"] == 1
                         and "running" in s["containerStatuses"][0]["state"])
    url = f"{api}/api/v1/namespaces/default/pods/p/log"
    await asyncio.sleep(0.3)
    code, prev = await _get(url, previous="true")
    assert code == 200 and prev == "first run\n"
    code, cur = await _get(url)
    assert code == 200 and cur.startswith("tick 0\ntick 1\n")
    code, tail = await _get(url, tailLines="2")
    assert code == 200 and len(tail.splitlines()) == 2 and tail.startswith("tick")
    code, limited = await _get(url, limitBytes="5")
    assert limited == "tick "
    async with aiohttp.ClientSession() as s, s.get(url, params={"follow": "true", "tailLines": "0"}) as r:
        first = await asyncio.wait_for(r.content.readline(), 2)
        second = await asyncio.wait_for(r.content.readline(), 2)
    assert first.startswith(b"tick ") and int(second.split()[1]) == int(first.split()[1]) + 1


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        ({}, 400, "a container name must be specified for pod two, choose one of: [a b]"),
        ({"container": "zz"}, 400, "container zz is not valid for pod two"),
        ({"container": "a", "previous": "true"}, 400,
         'previous terminated container "a" in pod "two" not found'),
        ({"container": "b"}, 400, 'container "b" in pod "two" is waiting to start: CreateContainerError'),
        ({"container": "a", "tailLines": "x"}, 400, "tailLines"),
    ],
    ids=["no-container", "unknown-container", "no-previous", "waiting", "bad-param"],
)
async def test_log_errors_are_status(cluster: tuple[FakeAgent, str, dict[str, Any]], params: dict[str, str],
                                     code: int, message: str) -> None:
    agent, api, pods = cluster
    pod = make_pod("two", [{"name": "a", "command": ["sleep", "30"]}, {"name": "b", "image": "nginx"}])
    pods["two"] = pod
    agent.start(pod)
    await agent.wait_for(lambda s: "running" in s["containerStatuses"][0]["state"]
                         and "waiting" in s["containerStatuses"][1]["state"])
    got, body = await _get(f"{api}/api/v1/namespaces/default/pods/two/log", **params)
    status = orjson.loads(body)
    assert got == code and status["kind"] == "Status" and status["code"] == code
    assert message in status["message"]
