"""Exec over the node endpoint's WebSocket route with a client the test drives frame by frame:
the session starts only once the client answers the READY PING (client-go 1.30-1.33 drops
messages that arrive before it registered its streams: kubectl then exits 0 with no output), a
client that never answers still gets its session, and a session that fails inside still ends
with a Failure Status (never a close without one, which kubectl reads as success)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podns.node.runtime.base import ExecSpec
from podns.node.server import make_app
from podns.node.streaming import session, websocket
from podns.objects import remotecommand as rc
from tests._support import serve_app
from tests.node.conftest import node_pki

pytestmark = pytest.mark.timeout(30)

POD = {"metadata": {"name": "p", "namespace": "default", "uid": "u1"}}
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
EXEC = "/exec/default/p/main?command=echo&command=hi&stdout=1&stderr=1"


class _Instance:
    """A running container whose exec runs on the host (what the process runtime's does)."""

    running = True

    def exec_spec(self, command: list[str], *, tty: bool = False, stdin: bool = False) -> ExecSpec:
        return ExecSpec(argv=command, env=ENV)


class _Runner:
    proc = _Instance()


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext]]:
    """A node endpoint with one running pod `p` (container `main`)."""
    serving, client = node_pki(tmp_path)
    app = make_app(lambda ns, pod, c: (_Runner(), POD) if pod == "p" else (None, None), lambda: [POD])
    runner, url = await serve_app(app, serving)
    yield url, client
    await runner.cleanup()


async def _rest(ws: aiohttp.ClientWebSocketResponse,
                msg: aiohttp.WSMessage | None = None) -> dict[int, bytes]:
    """Every data message (from `msg` on) until the close, joined per channel (the v5 channel
    byte first)."""
    got: dict[int, bytes] = {}
    while (msg := msg or await ws.receive(timeout=10)).type == aiohttp.WSMsgType.BINARY:
        got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
        msg = None
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    return got


async def test_output_waits_for_the_clients_answer_to_the_ready_ping(
        endpoint: tuple[str, ssl.SSLContext]) -> None:
    """given a client that has not answered the READY PING yet (its reader not running, as
    client-go's before it registered its streams), nothing else reaches it, however long it
    takes; once it answers, the output and the Status follow."""
    url, tls = endpoint
    async with aiohttp.ClientSession() as s, s.ws_connect(
            url + EXEC, ssl=tls, protocols=(rc.WS_V5,), autoping=False) as ws:
        first = await ws.receive(timeout=10)
        assert (first.type, first.data) == (aiohttp.WSMsgType.PING, websocket.READY_PING)
        following = asyncio.create_task(ws.receive())
        await asyncio.sleep(1.0)  # `echo` would have printed by now: nothing may come
        assert not following.done(), following.result()
        await ws.pong(first.data)
        got = await _rest(ws, await asyncio.wait_for(following, 10))
    assert got[rc.STDOUT] == b"hi\n"
    assert json.loads(got[rc.ERROR]) == rc.success_status()


async def test_a_client_that_never_answers_still_gets_its_session(
        endpoint: tuple[str, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch) -> None:
    """given a client that reads without answering PINGs, the session starts after
    CLIENT_READY_WAIT anyway."""
    monkeypatch.setattr(websocket, "CLIENT_READY_WAIT", 0.3)
    url, tls = endpoint
    async with aiohttp.ClientSession() as s, s.ws_connect(
            url + EXEC, ssl=tls, protocols=(rc.WS_V5,), autoping=False) as ws:
        assert (await ws.receive(timeout=10)).type == aiohttp.WSMsgType.PING
        got = await _rest(ws)
    assert got[rc.STDOUT] == b"hi\n"
    assert json.loads(got[rc.ERROR]) == rc.success_status()


async def test_a_session_that_fails_inside_ends_with_a_failure_status(
        endpoint: tuple[str, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """given a session that raises where nothing expected it, the client gets the kubelet's
    InternalError Status (kubectl: exit 1 and the message), and the agent logs the traceback."""
    async def broken(*args: Any) -> Any:
        raise RuntimeError("out of descriptors, say")

    monkeypatch.setattr(session, "_spawn", broken)
    url, tls = endpoint
    async with aiohttp.ClientSession() as s, s.ws_connect(url + EXEC, ssl=tls, protocols=(rc.WS_V5,)) as ws:
        got = await _rest(ws)
    status = json.loads(got[rc.ERROR])
    assert status["status"] == "Failure" and status["reason"] == "InternalError"
    assert status["message"] == "error executing command in container: out of descriptors, say"
    assert "out of descriptors, say" in caplog.text
