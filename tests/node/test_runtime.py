"""Process runtime: real processes, their exit codes, signals, process groups, captured logs."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from podns.node import runtime
from podns.node.logs import LogOptions, LogSink, read_lines

pytestmark = pytest.mark.timeout(20)
PY = sys.executable
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (orphans may wait a while to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_exit_code_and_logs_per_stream(tmp_path: Path) -> None:
    """given a process writing to stdout and stderr, its lines are captured with their streams."""
    sink = LogSink(tmp_path / "c" / "0.log")
    code = ("import sys; print('out1'); print('err1', file=sys.stderr); print('no-newline', end='')\n"
            "sys.exit(3)")
    proc = runtime.start([PY, "-c", code], env=ENV, sink=sink)
    assert await proc.wait() == 3
    raw = (tmp_path / "c" / "0.log").read_text().splitlines()
    assert any(line.split(" ", 3)[1:] == ["stdout", "F", "out1"] for line in raw)
    assert any(line.split(" ", 3)[1:] == ["stderr", "F", "err1"] for line in raw)
    lines, _ = read_lines(tmp_path / "c" / "0.log", LogOptions())
    assert b"no-newline\n" in lines
    tail, _ = read_lines(tmp_path / "c" / "0.log", LogOptions(tail_lines=1, timestamps=True))
    assert len(tail) == 1 and tail[0].split(b" ", 1)[0].endswith(b"Z")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no-such-command-xyz"], 'exec: "no-such-command-xyz": executable file not found in $PATH'),
        (["/nonexistent/bin/x"], "no such file or directory"),
        (["./data.txt"], "permission denied"),
        ([], "no command specified"),
    ],
    ids=["not-in-path", "bad-path", "not-executable", "empty"],
)
async def test_start_errors_are_clear(argv: list[str], message: str, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("not a program")
    with pytest.raises(runtime.StartError, match=message.replace("$", r"\$")):
        runtime.start(argv, env=ENV, cwd=str(tmp_path))


async def test_stop_sigterm_then_sigkill_whole_group(tmp_path: Path) -> None:
    """given a shell whose child ignores SIGTERM, stop() kills the whole group after the grace period."""
    pidfile = tmp_path / "child.pid"
    ignore = "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    script = f"trap '' TERM; {PY} -c '{ignore}' & echo $! > {pidfile}; wait"
    proc = runtime.start(["sh", "-c", script], env=ENV)
    for _ in range(100):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await asyncio.sleep(0.02)
    child = int(pidfile.read_text())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    code = await proc.stop(grace=0.5)
    assert 0.4 < loop.time() - t0 < 3
    assert code == 137  # SIGKILL -> 128+9
    await asyncio.sleep(0.1)
    assert not alive(child)


async def test_sigterm_honoured_gives_143() -> None:
    proc = runtime.start([PY, "-c", "import time; time.sleep(30)"], env=ENV)
    assert await proc.stop(grace=5) == 143


async def test_group_members_killed_when_leader_exits(tmp_path: Path) -> None:
    """given a process that leaves a background child, its exit takes the child down (as a cgroup)."""
    pidfile = tmp_path / "bg.pid"
    proc = runtime.start(["sh", "-c", f"sleep 30 & echo $! > {pidfile}"], env=ENV)
    assert await proc.wait() == 0
    await asyncio.sleep(0.1)
    assert not alive(int(pidfile.read_text()))


async def test_recorded_leftovers_are_killed(tmp_path: Path) -> None:
    """given pids recorded by a previous agent, kill_recorded stops exactly those still alive."""
    proc = runtime.start([PY, "-c", "import time; time.sleep(30)"], env=ENV)
    runtime.record(tmp_path / "pids", [proc])
    assert runtime.kill_recorded(tmp_path / "pids") == 1
    assert await proc.wait() == 137


async def test_log_rotation_keeps_limits(tmp_path: Path) -> None:
    sink = LogSink(tmp_path / "0.log", max_bytes=2000, max_files=3)
    code = "for i in range(500): print('line %04d' % i)"
    proc = runtime.start([PY, "-c", code], env=ENV, sink=sink)
    await proc.wait()
    sizes = _sizes(tmp_path)
    assert sorted(sizes) == ["0.log", "0.log.1", "0.log.2"]
    assert all(size < 2100 for size in sizes.values())
    lines, _ = read_lines(tmp_path / "0.log", LogOptions())
    assert lines[-1] == b"line 0499\n"
