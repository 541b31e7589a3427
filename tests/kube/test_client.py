"""The async client against a fake API server: verbs, paging, errors, failover, Retry-After."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.config import in_memory
from podns.kube.resources import PODS
from tests._support import serve_app

from .apiserver import Failure, FakeAPIServer, pod
from .conftest import Started, dead_url

pytestmark = pytest.mark.timeout(20)

PODS_DEFAULT = "api/v1/namespaces/default/pods"


async def test_crud_round_trip(client: Client, fake: Started) -> None:
    """Given an empty server, create/get/update/patch/delete behave and map errors."""
    created = await client.create(PODS, pod("a", app="x"))
    assert created["metadata"]["resourceVersion"]
    got = await client.get(PODS, "a", "default")
    assert got["metadata"]["labels"] == {"app": "x"}
    got["spec"] = {"nodeName": "n1"}
    updated = await client.update(PODS, got)
    assert updated["spec"]["nodeName"] == "n1"
    with pytest.raises(errors.Conflict) as conflict:
        await client.update(PODS, got)  # stale resourceVersion
    assert conflict.value.code == 409 and conflict.value.reason == "Conflict"
    patched = await client.patch(PODS, "a", {"metadata": {"labels": {"b": "1"}}}, "default")
    assert patched["metadata"]["labels"] == {"app": "x", "b": "1"}
    with pytest.raises(errors.AlreadyExists):
        await client.create(PODS, pod("a"))
    await client.delete(PODS, "a", "default")
    with pytest.raises(errors.NotFound) as nf:
        await client.get(PODS, "a", "default")
    assert isinstance(nf.value, errors.APIError) and nf.value.code == 404


async def test_list_pages_and_list_all(client: Client, fake: Started) -> None:
    """Given 7 pods, limit=3 pages carry continue tokens and list_all follows them."""
    server, _ = fake
    for i in range(7):
        server.put(PODS_DEFAULT, pod(f"p{i}"))
    page = await client.list(PODS, "default", limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"] == "3"
    everything = await client.list_all(PODS, "default", limit=3)
    assert [o["metadata"]["name"] for o in everything["items"]] == [f"p{i}" for i in range(7)]
    assert "continue" not in everything["metadata"]
    assert everything["metadata"]["resourceVersion"] == str(server.rv)
    limits = [r[2].get("limit") for r in server.requests if r[0] == "GET"]
    assert limits[-3:] == ["3", "3", "3"]


async def test_patch_types_and_params(client: Client, fake: Started) -> None:
    """Patch sends the content type of the patch type, fieldManager and force."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    await client.patch(PODS, "a", {"metadata": {"labels": {"x": "y"}}}, "default",
                       patch_type="apply", field_manager="me", force=True)
    assert server.requests[-1][2] == {"fieldManager": "me", "force": "true"}
    with pytest.raises(ValueError, match="field_manager"):
        await client.patch(PODS, "a", {}, "default", patch_type="apply")
    with pytest.raises(ValueError, match="unknown patch type"):
        await client.patch(PODS, "a", {}, "default", patch_type="bogus")  # type: ignore[arg-type]


async def test_non_status_error_body_is_synthesised(client: Client, fake: Started) -> None:
    """A 500 with a plain-text body still raises ServerError with a Status."""
    server, _ = fake
    server.failures.append(Failure("POST", 500, body=None))
    with pytest.raises(errors.ServerError) as err:
        await client.create(PODS, pod("a"))
    assert err.value.code == 500 and err.value.status["kind"] == "Status"


async def test_failover_to_next_server(start_server: Callable[[], Awaitable[Started]]) -> None:
    """Given a dead first server, requests (writes too) go to the second, which then sticks."""
    _server, url = await start_server()
    async with Client(in_memory([dead_url(), url])) as client:
        await client.create(PODS, pod("a"))
        assert (await client.get(PODS, "a", "default"))["metadata"]["name"] == "a"
        assert client.server == url


async def test_all_servers_down_raises_transport_error() -> None:
    """Given no reachable server, a TransportError (a KubeError) names every URL tried."""
    urls = [dead_url(), dead_url()]
    async with Client(in_memory(urls)) as client:
        with pytest.raises(errors.TransportError) as err:
            await client.get(PODS, "a", "default")
    assert isinstance(err.value, errors.KubeError)
    assert all(u in str(err.value) for u in urls)
    assert err.value.__cause__ is not None


async def test_get_honours_retry_after(client: Client, fake: Started) -> None:
    """A GET answered 429 Retry-After: 1 is retried after about a second; a POST is not."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    server.failures.append(Failure("GET", 429, retry_after=1, body={
        "kind": "Status", "code": 429, "reason": "TooManyRequests", "message": "slow down"}))
    t0 = time.monotonic()
    assert (await client.get(PODS, "a", "default"))["metadata"]["name"] == "a"
    assert 0.9 <= time.monotonic() - t0 < 5
    server.failures.append(Failure("POST", 429, retry_after=7))
    with pytest.raises(errors.TooManyRequests) as err:
        await client.create(PODS, pod("b"))
    assert err.value.retry_after == 7


async def test_raw_request(client: Client, fake: Started) -> None:
    """request() sends a raw call and decodes JSON."""
    server, _ = fake
    server.put(PODS_DEFAULT, pod("a"))
    body = await client.request("GET", "/api/v1/namespaces/default/pods/a")
    assert body["metadata"]["name"] == "a"
    with pytest.raises(errors.NotFound):
        await client.request("GET", "/api/v1/namespaces/default/pods/zz")


def test_fake_server_module_is_importable() -> None:
    assert FakeAPIServer().rv == 1


async def test_get_503_moves_to_another_server(
        start_server: Callable[[], Awaitable[Started]]) -> None:
    """A GET answered 503 by one API server is retried on the next one."""
    sick, sick_url = await start_server()
    healthy, healthy_url = await start_server()
    healthy.put(PODS_DEFAULT, pod("a"))
    sick.failures.append(Failure("GET", 503, count=10, retry_after=0))
    async with Client(in_memory([sick_url, healthy_url])) as client:
        assert (await client.get(PODS, "a", "default"))["metadata"]["name"] == "a"
        assert client.server == healthy_url
    assert len(sick.requests) == 1


async def test_non_json_success_is_a_server_error(start_server: Callable[[], Awaitable[Started]]
                                                  ) -> None:
    """A 200 that is not a JSON object (a proxy's HTML page) raises ServerError, not a
    TypeError later in the caller."""
    from aiohttp import web

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", html)
    runner, url = await serve_app(app)
    try:
        async with Client(in_memory([url])) as client:
            with pytest.raises(errors.ServerError, match="not a JSON object"):
                await client.get(PODS, "a", "default")
            assert await client.request("GET", "/anything") == "<html>hello</html>"
    finally:
        await runner.cleanup()
