"""The node endpoint's stream routes against bad clients: garbage after a SPDY upgrade, bad
WebSocket messages, unknown protocols; each ends the session cleanly (no traceback, no 500)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podns.node.server import make_app
from podns.node.streaming.handlers import PodNetwork
from tests._support import serve_app
from tests.node.conftest import node_pki

pytestmark = pytest.mark.timeout(30)

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}}


@pytest.fixture
async def endpoint(tmp_path: Path,
                   caplog: pytest.LogCaptureFixture) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """A node endpoint with one pod whose port-forward target is a closed loopback port."""
    serving, client = node_pki(tmp_path)

    def find_pod(ns: str, name: str) -> Any:
        return PodNetwork(POD, "127.0.0.1", None) if name == "p" else None

    runner, url = await serve_app(make_app(lambda ns, pod, c: (None, None), lambda: [POD], find_pod), serving)
    yield url, client
    await runner.cleanup()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text


async def _spdy_upgrade(url: str, tls: ssl.SSLContext, path: str, protocol: str) -> tuple[bytes, Any]:
    host, port = url.removeprefix("https://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=tls, server_hostname=host)
    writer.write((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                  f"X-Stream-Protocol-Version: {protocol}\r\nContent-Length: 0\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    return head, (reader, writer)


@pytest.mark.parametrize("garbage", [b"\x80\x02\x00\x01\x00\x00\x00\x04abcd", b"\xff" * 64,
                                     b"\x80\x03\x00\x01\x00\x00\x00\x0a" + b"\x00" * 10 + b"junk"],
                         ids=["spdy-v2", "noise", "bad-zlib"])
async def test_garbage_after_a_spdy_upgrade_ends_the_session(endpoint: tuple[str, ssl.SSLContext],
                                                             garbage: bytes) -> None:
    url, tls = endpoint
    head, (reader, writer) = await _spdy_upgrade(url, tls, "/portForward/default/p", "portforward.k8s.io")
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(garbage)
    rest = await asyncio.wait_for(reader.read(), 10)  # a GOAWAY at most, then the end
    assert len(rest) <= 16
    writer.close()


async def test_unknown_protocols_and_bad_websocket_messages(endpoint: tuple[str, ssl.SSLContext]) -> None:
    url, tls = endpoint
    head, (_, writer) = await _spdy_upgrade(url, tls, "/portForward/default/p", "v9.nonsense")
    assert head.startswith(b"HTTP/1.1 403")
    writer.close()
    async with aiohttp.ClientSession() as s:
        async with s.get(url + "/portForward/default/p?ports=1", ssl=tls) as r:
            assert r.status == 400  # no upgrade asked for
        async with s.ws_connect(url + "/portForward/default/p?ports=1", ssl=tls,
                                protocols=("v4.channel.k8s.io",)) as ws:
            await ws.send_bytes(b"")
            await ws.send_bytes(b"\x07garbage for a channel that does not exist")
            await ws.send_str("not base64 on a binary protocol")
            got = [await ws.receive() for _ in range(3)]  # port header x2, the dial error
            assert b"connection refused" in got[2].data
        async with s.get(url + "/portForward/default/p?ports=0", ssl=tls,
                         headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                  "Sec-WebSocket-Version": "13",
                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as r:
            assert r.status == 400 and "must be > 0" in await r.text()
