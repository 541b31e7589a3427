"""Helpers shared by test packages (unit and e2e): free loopback ports, the versioned kubectl
binaries, polling until a condition holds, an aiohttp app on loopback. One copy here instead
of one per test module."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port that is free on loopback now (for TCP; DNS ports are checked for UDP too)."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if kind == socket.SOCK_STREAM:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
            return port
        except OSError:
            continue


def kubectl_binary(version: str) -> str:
    """Path of `kubectl.<version>` (on PATH, in $PODNS_KUBECTL_DIR, or next to the `kubectl` on
    PATH); version "installed" is the `kubectl` on PATH itself. Skips the test when missing."""
    if version == "installed":
        found = shutil.which("kubectl")
        if not found:
            pytest.skip("kubectl is not installed")
        return found
    name = f"kubectl.{version}"
    found = shutil.which(name)
    if found:
        return found
    dirs = [os.environ.get("PODNS_KUBECTL_DIR", "")]
    plain = shutil.which("kubectl")
    if plain:
        dirs.append(os.path.dirname(os.path.realpath(plain)))
    for d in dirs:
        if d and os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    pytest.skip(f"{name} is not installed")


def wait_until(cond: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
               step: float = 0.05) -> Any:
    """Poll `cond` every `step` seconds until it returns something truthy (returned); one last
    try at the deadline, then AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s")
        time.sleep(step)


async def serve_app(app: web.Application, ssl_context: ssl.SSLContext | None = None
                    ) -> tuple[web.AppRunner, str]:
    """Serve the aiohttp `app` on a free loopback port: (runner, "http://127.0.0.1:<port>", or
    https with `ssl_context`). The caller ends it with `await runner.cleanup()`."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"


def without_permission_bypass() -> list[str]:
    """A command prefix under which file permissions apply even to root: setpriv drops
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set. Empty when not root; skips
    the test when root has no setpriv."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make a directory unwritable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def session_members(sid: int) -> list[str]:
    """Live (not zombie) processes of session `sid`, as "pid command" lines."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, session = fields[0], int(fields[4])
        if session == sid and state != "Z":
            found.append(f"{entry} {cmdline}")
    return found


def closed_loopback_port() -> int:
    """A loopback TCP port nothing listens on now (connections are refused: a store that never
    answers, so `podns up` stays in its store wait)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_service_cidr(*, ipv6: bool = False) -> str:
    """A service CIDR for a namespace-mode cluster of this test on the real machine: a random IPv4
    10.2xx.y.0/24 that no network of this machine overlaps (and, with `ipv6`, a random ULA /112
    after it), clear of 10.244.0.0/16 (where pod CIDRs are cut) and of every range an agent here
    ever claimed. Each node NATs its cluster's range in the host's output path, and agents refuse
    a range overlapping another cluster's service or pod range (`podns.node.servicecidr`), so
    clusters that tests (of several engineers) run at once each need their own, never the
    10.96.0.0/16 default."""
    import ipaddress
    import random

    from podns.node import ipam, netns

    used = netns.host_networks() + netns.bridge_networks() if netns.unavailable_reason() is None else []
    with contextlib.suppress(ipam.LockDirError, OSError):  # ranges agents here claim, held or not
        used += [net for net, _path, _service in ipam.claimed_ranges(ipam.lock_dir())]
    v6 = f",fd00:{random.randint(0x1000, 0xffff):x}:{random.randint(0, 0xffff):x}::/112" if ipv6 else ""
    while True:
        second = random.choice([n for n in range(200, 255) if n != 244])  # 10.244/16: pod CIDRs
        cidr = ipaddress.ip_network(f"10.{second}.{random.randint(0, 255)}.0/24")
        if not any(cidr.overlaps(u) for u in used):
            return f"{cidr}{v6}"


def signal_while_starting(args: list[str], log_path: Path, waiting_for: str, sig: int,
                          cwd: Path) -> tuple[int, str, list[str]]:
    """Run `args` in a session of its own until its output shows `waiting_for`, send `sig`, and
    return (exit code, output, live processes of its session right after it exited). Whatever
    happens, nothing of the session is left running."""
    path = log_path
    with open(path, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                env=dict(os.environ, PYTHONUNBUFFERED="1"), start_new_session=True)
    try:
        wait_until(lambda: waiting_for in path.read_text() or proc.poll() is not None, 60,
                   f"{path.stem} printing {waiting_for!r}")
        assert proc.poll() is None, path.read_text()
        proc.send_signal(sig)
        code = proc.wait(60)
        left = session_members(proc.pid)  # at once: the command reaps its children before it exits
        return code, path.read_text(), left
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for line in session_members(proc.pid):  # never leave a child of a failed case behind
            os.kill(int(line.split()[0]), signal.SIGKILL)
