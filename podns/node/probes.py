"""Container probes: the checks (exec, tcpSocket, httpGet, grpc) and the worker that runs one.

A check is one attempt with a timeout, returning `ProbeResult(success, message)`; it never
raises (a hanging or broken target is a failure with a message, as the kubelet reports it).

`ProbeWorker` runs one probe of one container instance on its period and applies the thresholds,
calling `on_change(result)` only when the thresholded result flips, so the agent can write a
readiness change to the API at once. Defaults are Kubernetes': initialDelaySeconds 0,
periodSeconds 10, timeoutSeconds 1, successThreshold 1, failureThreshold 3.

gRPC: `grpc.health.v1.Health/Check` needs HTTP/2. The probe speaks just enough cleartext HTTP/2
(prior knowledge, one stream, HPACK literals without Huffman coding on the request side; the
response is judged by its DATA frame only, so response header compression does not matter) to
send one request and read `HealthCheckResponse.status`; TLS is not supported (neither is it by
the kubelet's gRPC probe).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from podns.node.runtime.base import ExecSpec
from podns.node.sandbox import Sandbox

Obj = dict[str, Any]

#: the kubelet identifies itself to httpGet targets this way (with its version)
USER_AGENT = "kube-probe/1.33"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    success: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """A probe with Kubernetes' defaults filled in (times in seconds)."""

    handler: Obj
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace: float | None = None

    @classmethod
    def parse(cls, probe: Obj) -> ProbeSpec:
        return cls(
            handler=probe,
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
            termination_grace=(float(probe["terminationGracePeriodSeconds"])
                               if probe.get("terminationGracePeriodSeconds") is not None else None),
        )


def _oserr(exc: BaseException) -> str:
    """`connection refused` etc. (Go's wording, lower case) for an OSError."""
    code = getattr(exc, "errno", None)
    return os.strerror(code).lower() if isinstance(code, int) else str(exc)


def resolve_port(port: Any, container: Obj) -> int:
    """An int port, or a named one looked up in the container's `ports` (ValueError if unknown)."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} not found in the container's ports")


async def check(
    handler: Obj, *, pod_ip: str, container: Obj, env: Mapping[str, str], timeout: float,
    cwd: str | None = None, sandbox: Sandbox | None = None,
    exec_in: Callable[[list[str]], ExecSpec] | None = None,
) -> ProbeResult:
    """Run one attempt of the probe `handler` (a Probe or LifecycleHandler object). Network
    checks go to `pod_ip` from the agent's namespace; exec runs what `exec_in(command)` says
    (the container runtime's way into the container), else the command with `env` in `cwd`,
    inside `sandbox` when given."""
    try:
        if "exec" in handler:
            command = [str(c) for c in handler["exec"].get("command") or []]
            if not command:
                return ProbeResult(False, "exec probe has no command")
            spec = (exec_in(command) if exec_in is not None
                    else ExecSpec(argv=command, env=dict(env), cwd=cwd, sandbox=sandbox))
            return await exec_check(spec.argv, env=spec.env, timeout=timeout, cwd=spec.cwd,
                                    sandbox=spec.sandbox, shown=command)
        if "tcpSocket" in handler:
            h = handler["tcpSocket"]
            return await tcp_check(h.get("host") or pod_ip, resolve_port(h.get("port"), container), timeout)
        if "httpGet" in handler:
            h = handler["httpGet"]
            return await http_check(
                h.get("host") or pod_ip, resolve_port(h.get("port"), container), timeout=timeout,
                path=h.get("path") or "/", scheme=str(h.get("scheme") or "HTTP").upper(),
                headers=[(str(x.get("name", "")), str(x.get("value", "")))
                         for x in h.get("httpHeaders") or []],
            )
        if "grpc" in handler:
            h = handler["grpc"]
            return await grpc_check(pod_ip, int(h.get("port", 0)), str(h.get("service") or ""), timeout)
    except ValueError as exc:
        return ProbeResult(False, str(exc))
    return ProbeResult(False, "probe has no handler (exec, tcpSocket, httpGet or grpc)")


async def exec_check(command: list[str], *, env: Mapping[str, str], timeout: float,
                     cwd: str | None = None, sandbox: Sandbox | None = None,
                     shown: list[str] | None = None) -> ProbeResult:
    """Exit status 0 within `timeout` is success; output becomes the message. With a `sandbox`
    the command runs inside it (its cwd and user), as a probe runs inside the container.
    `shown`: the command as the pod spec wrote it, for messages (default `command`)."""
    if not command:
        return ProbeResult(False, "exec probe has no command")
    shown = shown or command
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, env=dict(env), cwd=None if sandbox else cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
            preexec_fn=sandbox.enter if sandbox else None,
        )
    except OSError as exc:
        return ProbeResult(False, f'exec: "{shown[0]}": {exc.strerror or exc}')
    except subprocess.SubprocessError as exc:
        return ProbeResult(False, f'exec: "{shown[0]}": entering the pod sandbox failed: {exc}')
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        return ProbeResult(False, f"command timed out: {' '.join(shown)!r} timed out after {timeout:g}s")
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group's stragglers
    text = out.decode("utf-8", "replace")[:10240].strip()
    if proc.returncode == 0:
        return ProbeResult(True, text)
    return ProbeResult(False, text or f"command {' '.join(shown)!r} exited with {proc.returncode}")


async def tcp_check(host: str, port: int, timeout: float) -> ProbeResult:
    """A completed TCP handshake within `timeout` is success."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return ProbeResult(False, f"dial tcp {host}:{port}: i/o timeout")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: connect: {_oserr(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True)


async def http_check(
    host: str, port: int, *, timeout: float, path: str = "/", scheme: str = "HTTP",
    headers: list[tuple[str, str]] | None = None,
) -> ProbeResult:
    """GET `path`; a status in [200, 400) within `timeout` is success (the kubelet's rule).
    HTTPS does not verify the certificate, as the kubelet does not."""
    ctx: ssl.SSLContext | None = None
    if scheme == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if not path.startswith("/"):
        path = "/" + path
    hdrs = {"host": f"{host}:{port}", "user-agent": USER_AGENT, "accept": "*/*"}
    for name, value in headers or []:
        hdrs[name.lower()] = value
    hdrs["connection"] = "close"
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    url = f"{scheme.lower()}://{host}:{port}{path}"

    async def attempt() -> ProbeResult:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
        try:
            writer.write(request.encode("latin-1"))
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[1][:3].isdigit():
            return ProbeResult(False, f'Get "{url}": malformed HTTP response {line[:80]!r}')
        code = int(parts[1][:3])
        if 200 <= code < 400:
            return ProbeResult(True, f"HTTP probe succeeded with statuscode: {code}")
        return ProbeResult(False, f"HTTP probe failed with statuscode: {code}")

    try:
        return await asyncio.wait_for(attempt(), timeout)
    except TimeoutError:
        return ProbeResult(False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded '
                                  "while awaiting headers)")
    except (OSError, ssl.SSLError) as exc:
        return ProbeResult(False, f'Get "{url}": dial tcp {host}:{port}: connect: {_oserr(exc)}')


# -- gRPC health v1 over minimal HTTP/2 ---------------------------------------------------------

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST, _SETTINGS, _PING, _GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
_GRPC_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _hpack_literal(name: str, value: str) -> bytes:
    """Literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2)."""
    def string(s: str) -> bytes:
        raw = s.encode()
        assert len(raw) < 127
        return bytes([len(raw)]) + raw
    return b"\x00" + string(name) + string(value)


def _grpc_request(host: str, port: int, service: str) -> bytes:
    headers = b"".join(_hpack_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", "/grpc.health.v1.Health/Check"),
        (":authority", f"{host}:{port}"), ("content-type", "application/grpc"), ("te", "trailers"),
        ("user-agent", USER_AGENT),
    ))
    svc = service.encode()
    body = (b"\x0a" + bytes([len(svc)]) + svc) if svc else b""
    message = b"\x00" + struct.pack(">I", len(body)) + body
    return (_PREFACE + _frame(_SETTINGS, 0, 0, b"") + _frame(_HEADERS, 0x4, 1, headers)
            + _frame(_DATA, 0x1, 1, message))


async def grpc_check(host: str, port: int, service: str, timeout: float) -> ProbeResult:
    """`grpc.health.v1.Health/Check`: SERVING within `timeout` is success."""
    async def attempt() -> ProbeResult:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(_grpc_request(host, port, service))
            await writer.drain()
            data = b""
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                ftype, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = await reader.readexactly(length)
                if ftype == _SETTINGS and not flags & 0x1:
                    writer.write(_frame(_SETTINGS, 0x1, 0, b""))
                elif ftype == _PING and not flags & 0x1:
                    writer.write(_frame(_PING, 0x1, 0, payload))
                elif ftype == _DATA and stream == 1:
                    data += payload
                    if len(data) >= 5 and len(data) >= 5 + int.from_bytes(data[1:5], "big"):
                        return _health_status(data[5 : 5 + int.from_bytes(data[1:5], "big")])
                elif ftype == _HEADERS and stream == 1 and flags & 0x1:
                    return ProbeResult(False, "rpc error: no HealthCheckResponse (call failed, see "
                                              "grpc-status)")
                elif ftype in (_RST, _GOAWAY):
                    return ProbeResult(False, "rpc error: stream reset by the server")
        finally:
            writer.close()

    try:
        return await asyncio.wait_for(attempt(), timeout)
    except TimeoutError:
        return ProbeResult(False, f"timeout: health rpc did not complete within {timeout:g}s")
    except (OSError, asyncio.IncompleteReadError) as exc:
        return ProbeResult(False, f"error: this server does not implement the grpc health protocol "
                                  f"(grpc.health.v1.Health): {exc}")


def _health_status(msg: bytes) -> ProbeResult:
    status = 0
    if len(msg) >= 2 and msg[0] == 0x08:
        status = msg[1]
    name = _GRPC_STATUS.get(status, str(status))
    if status == 1:
        return ProbeResult(True, "status: SERVING")
    return ProbeResult(False, f"service unhealthy (responded with {name!r})")


# -- the periodic worker ------------------------------------------------------------------------


class ProbeWorker:
    """Runs one probe periodically and keeps its thresholded result.

    `result` starts as `initial` (readiness/startup: False; liveness: True, as in the kubelet) and
    changes only after `successThreshold` consecutive successes or `failureThreshold` consecutive
    failures; each change calls `on_change(result, last)` with the attempt that decided it.
    """

    def __init__(
        self,
        kind: str,
        spec: ProbeSpec,
        attempt: Callable[[float], Awaitable[ProbeResult]],
        on_change: Callable[[bool, ProbeResult], None],
        *,
        initial: bool,
        on_result: Callable[[ProbeResult], None] | None = None,
    ) -> None:
        self.kind = kind
        self.spec = spec
        self.attempt = attempt
        self.on_change = on_change
        self.on_result = on_result
        self.result = initial
        self.last: ProbeResult | None = None
        self._successes = 0
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"probe-{self.kind}")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def observe(self, res: ProbeResult) -> None:
        """Apply one attempt's outcome to the thresholds (the testable step of the loop)."""
        self.last = res
        if self.on_result is not None:
            self.on_result(res)
        if res.success:
            self._successes += 1
            self._failures = 0
            if not self.result and self._successes >= self.spec.success_threshold:
                self.result = True
                self.on_change(True, res)
        else:
            self._failures += 1
            self._successes = 0
            if self.result and self._failures >= self.spec.failure_threshold:
                self.result = False
                self.on_change(False, res)
            elif not self.result and self.kind == "startupProbe" and \
                    self._failures == self.spec.failure_threshold:
                self.on_change(False, res)  # startup gave up: the container is killed

    async def _run(self) -> None:
        if self.spec.initial_delay > 0:
            await asyncio.sleep(self.spec.initial_delay)
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            try:
                res = await asyncio.wait_for(self.attempt(self.spec.timeout), self.spec.timeout + 1.0)
            except TimeoutError:
                res = ProbeResult(False, f"probe timed out after {self.spec.timeout:g}s")
            except Exception as exc:  # a probe bug must not kill the worker
                res = ProbeResult(False, f"probe error: {exc!r}")
            self.observe(res)
            if self.kind == "startupProbe" and self.result:
                return  # a startup probe stops once it has succeeded
            await asyncio.sleep(max(0.0, self.spec.period - (loop.time() - began)))
