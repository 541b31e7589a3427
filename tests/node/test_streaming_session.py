"""One exec session without a transport: `podns.node.streaming.session.run` with channels fed
and read by the test (exit codes, stdin EOF, 126/127, a pty and its size, a client that leaves)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from podns.node.runtime.base import ExecSpec
from podns.node.sandbox import Sandbox
from podns.node.streaming import session
from podns.objects import remotecommand as rc
from podns.objects.apistatus import Status

pytestmark = pytest.mark.timeout(30)

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FOO": "bar"}


class Recorder:
    """Channels whose output the test reads back per channel."""

    def __init__(self) -> None:
        self.out: dict[int, bytes] = {}
        self.channels = session.Channels(send=self.send)

    async def send(self, channel: int, data: bytes) -> None:
        self.out[channel] = self.out.get(channel, b"") + data


def opts(*, stdin: bool = False, tty: bool = False) -> session.Options:
    return session.Options(stdin=stdin, stdout=True, stderr=not tty, tty=tty)


async def test_stdin_to_eof_output_and_exit_code(tmp_path: Path) -> None:
    """given stdin then EOF, the command reads it all, its stdout/stderr come apart, its exit code
    is the Status' ExitCode cause, and it ran with the container's env and working directory."""
    rec = Recorder()
    rec.channels.stdin.put_nowait(b"hello\n")
    rec.channels.stdin.put_nowait(None)
    script = "cat; echo $FOO; pwd; echo oops >&2; exit 3"
    spec = ExecSpec(argv=["sh", "-c", script], env=ENV, cwd=str(tmp_path))
    status = await session.run(spec, opts(stdin=True), rec.channels)
    assert rec.out[rc.STDOUT] == f"hello\nbar\n{tmp_path}\n".encode()
    assert rec.out[rc.STDERR] == b"oops\n"
    assert status == rc.exit_status(3)


@pytest.mark.parametrize("argv, code, message", [
    (["no-such-command-xyz"], 127, b'exec: "no-such-command-xyz": executable file not found in $PATH'),
    (["/proc/self/status"], 126, b'exec: "/proc/self/status": permission denied'),
], ids=["not-found", "not-executable"])
async def test_commands_that_cannot_run(argv: list[str], code: int, message: bytes) -> None:
    rec = Recorder()
    status = await session.run(ExecSpec(argv=argv, env=ENV), opts(), rec.channels)
    assert status == rc.exit_status(code) and message in rec.out[rc.STDERR]


async def test_a_sandbox_that_cannot_be_entered_is_126_with_the_reason() -> None:
    """given a pod sandbox whose network namespace is gone, the exec ends with exit code 126 and
    the failed step on stderr (the child's failure used to escape the session as an exception:
    the connection closed without a Status, which kubectl reads as exit code 0, no output)."""
    box = Sandbox(netns_path="/nonexistent/podns-test-netns")
    rec = Recorder()
    status = await session.run(ExecSpec(argv=["true"], env=ENV, sandbox=box), opts(), rec.channels)
    assert status == rc.exit_status(126)
    err = rec.out[rc.STDERR]
    assert b"failed to enter the pod's sandbox: " in err and b"/nonexistent/podns-test-netns" in err, err


async def test_an_exception_inside_the_session_is_a_failure_status() -> None:
    """given a session that raises, the transport still gets a Status to send: the kubelet's
    InternalError with the reason."""
    async def broken(o: session.Options, ch: session.Channels) -> Status:
        raise OSError(24, "Too many open files")

    status = await session.status_of(broken, opts(), Recorder().channels)
    assert status == rc.failure_status("error executing command in container: [Errno 24] Too many open files")


async def test_tty_has_the_clients_size() -> None:
    """given a TTY session whose client sent 100x30, the command runs on a pty of that size."""
    rec = Recorder()
    rec.channels.resize.put_nowait((100, 30))
    status = await session.run(ExecSpec(argv=["sh", "-c", "stty size; tty"], env=ENV), opts(tty=True),
                               rec.channels)
    lines = rec.out[rc.STDOUT].decode().split()
    assert lines[:2] == ["30", "100"] and lines[2].startswith("/dev/pts/") and status == rc.success_status()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


async def test_client_gone_kills_the_process_group(tmp_path: Path) -> None:
    """given a command with a child, when the client goes away, both are killed at once."""
    pidfile = tmp_path / "child"
    rec = Recorder()
    spec = ExecSpec(argv=["sh", "-c", f"sleep 100 & echo $! > {pidfile}; wait"], env=ENV)
    task = asyncio.create_task(session.run(spec, opts(), rec.channels))
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    child = int(pidfile.read_text())
    rec.channels.gone.set()
    status = await asyncio.wait_for(task, 5)
    assert status["status"] == "Failure"
    await asyncio.sleep(0.1)
    assert _state(child) in ("gone", "Z")  # a zombie waits for whoever adopted it to reap it


async def test_output_still_coming_after_exit_is_delivered(monkeypatch: pytest.MonkeyPatch) -> None:
    """given a command that exits while a child it left keeps writing (a pause shorter than the
    drain window between lines, longer than it in total), every line reaches the client: the
    drain gives up only after a silence, not at a fixed time after the exit (under load, output
    that arrived while the node agent was not scheduled was lost that way)."""
    monkeypatch.setattr(session, "DRAIN_AFTER_EXIT", 0.6)
    rec = Recorder()
    script = "(sleep 0.3; echo a; sleep 0.4; echo b; sleep 0.4; echo c) & exit 0"
    status = await session.run(ExecSpec(argv=["sh", "-c", script], env=ENV), opts(), rec.channels)
    assert rec.out.get(rc.STDOUT) == b"a\nb\nc\n" and status == rc.success_status()


async def test_a_child_holding_the_output_open_ends_after_a_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    """given a command whose child keeps its output open without writing, the session ends after
    the drain window and the child is killed."""
    monkeypatch.setattr(session, "DRAIN_AFTER_EXIT", 0.5)
    rec = Recorder()
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await session.run(ExecSpec(argv=["sh", "-c", "echo x; sleep 30 & exit 0"], env=ENV), opts(),
                               rec.channels)
    assert rec.out.get(rc.STDOUT) == b"x\n" and status == rc.success_status()
    assert loop.time() - started < 10
