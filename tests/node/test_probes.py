"""Probe checks against real listeners and processes, and the threshold logic of ProbeWorker."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from podns.node.probes import ProbeResult, ProbeSpec, ProbeWorker, check, grpc_check

pytestmark = pytest.mark.timeout(20)
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
CONTAINER = {"ports": [{"name": "http", "containerPort": 0}]}


async def _http_server(status: int, seen: list[bytes], delay: float = 0.0) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        await asyncio.sleep(delay)
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize(("status", "ok"), [(200, True), (302, True), (404, False), (503, False)])
async def test_http_get_status_rule_named_port_and_headers(status: int, ok: bool) -> None:
    """given an HTTP server, success iff 200 <= status < 400; named port and headers are used."""
    seen: list[bytes] = []
    server = await _http_server(status, seen)
    port = server.sockets[0].getsockname()[1]
    container = {"ports": [{"name": "http", "containerPort": port}]}
    headers = [{"name": "X-Probe", "value": "1"}]
    handler = {"httpGet": {"path": "/healthz", "port": "http", "httpHeaders": headers}}
    res = await check(handler, pod_ip="127.0.0.1", container=container, env=ENV, timeout=1)
    server.close()
    assert res.success is ok, res.message
    assert seen[0].startswith(b"GET /healthz HTTP/1.1\r\n")
    assert b"x-probe: 1" in seen[0].lower() and b"kube-probe/" in seen[0]


async def test_http_hanging_server_times_out() -> None:
    server = await _http_server(200, [], delay=5)
    port = server.sockets[0].getsockname()[1]
    t0 = asyncio.get_running_loop().time()
    res = await check({"httpGet": {"port": port}}, pod_ip="127.0.0.1", container={}, env=ENV, timeout=0.3)
    server.close()
    assert not res.success and "deadline" in res.message
    assert asyncio.get_running_loop().time() - t0 < 1.5


async def test_tcp_open_and_closed_port() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ok = await check({"tcpSocket": {"port": port}}, pod_ip="127.0.0.1", container={}, env=ENV, timeout=1)
    server.close()
    await server.wait_closed()
    bad = await check({"tcpSocket": {"port": port}}, pod_ip="127.0.0.1", container={}, env=ENV, timeout=1)
    assert ok.success and not bad.success and "refused" in bad.message


@pytest.mark.parametrize(
    ("command", "ok", "message"),
    [
        (["true"], True, ""),
        (["sh", "-c", "echo broken; exit 1"], False, "broken"),
        (["sleep", "10"], False, "timed out"),
        (["no-such-probe-cmd"], False, "no-such-probe-cmd"),
    ],
    ids=["ok", "fails", "hangs", "missing"],
)
async def test_exec_probe(command: list[str], ok: bool, message: str) -> None:
    res = await check({"exec": {"command": command}}, pod_ip="", container={}, env=ENV, timeout=0.5)
    assert res.success is ok
    assert message in res.message


async def test_unknown_named_port_is_failure_not_crash() -> None:
    res = await check({"tcpSocket": {"port": "nope"}}, pod_ip="127.0.0.1", container={}, env=ENV, timeout=1)
    assert not res.success and "nope" in res.message


GRPC_SERVER = r'''
import socket, struct, sys
status = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
buf = b""
while b"grpc.health.v1.Health/Check" not in buf or len(buf) < 24 + 9:
    buf += c.recv(65536)
def frame(t, f, sid, p): return struct.pack(">I", len(p))[1:] + bytes([t, f]) + struct.pack(">I", sid) + p
msg = b"\x08" + bytes([status])
body = b"\x00" + struct.pack(">I", len(msg)) + msg
c.sendall(frame(4, 0, 0, b"") + frame(1, 4, 1, b"\x88") + frame(0, 0, 1, body))
c.recv(100)
'''


@pytest.mark.parametrize(("status", "ok"), [(1, True), (2, False)], ids=["serving", "not-serving"])
async def test_grpc_health_probe(status: int, ok: bool) -> None:
    """given a server speaking HTTP/2 gRPC health v1, SERVING is success and NOT_SERVING failure."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", GRPC_SERVER, str(status),
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    port = int(await proc.stdout.readline())
    res = await grpc_check("127.0.0.1", port, "", timeout=2)
    proc.kill()
    await proc.wait()
    assert res.success is ok, res.message


def test_worker_thresholds() -> None:
    """given failureThreshold 3 / successThreshold 2, the result flips only after that many in a row."""
    changes: list[bool] = []
    w = ProbeWorker("readinessProbe", ProbeSpec({}, success_threshold=2, failure_threshold=3),
                    attempt=lambda t: None,  # type: ignore[arg-type,return-value]
                    on_change=lambda r, _: changes.append(r), initial=False)
    ok, bad = ProbeResult(True), ProbeResult(False)
    for res in (ok, bad, ok, ok, bad, bad, ok, bad, bad, bad):
        w.observe(res)
    assert changes == [True, False]
    assert ProbeSpec.parse({}).period == 10 and ProbeSpec.parse({}).failure_threshold == 3


async def test_worker_runs_on_period() -> None:
    """given period 0.1 s and a target that becomes healthy, the worker reports ready promptly."""
    healthy = asyncio.Event()
    changed = asyncio.Event()

    async def attempt(timeout: float) -> ProbeResult:
        return ProbeResult(healthy.is_set())

    w = ProbeWorker("readinessProbe", ProbeSpec({}, period=0.1), attempt,
                    on_change=lambda r, _: changed.set(), initial=False)
    w.start()
    await asyncio.sleep(0.25)
    assert not changed.is_set()
    healthy.set()
    await asyncio.wait_for(changed.wait(), 1)
    w.stop()
