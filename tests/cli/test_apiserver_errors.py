"""`podns apiserver` makes the data-dir checks of `podns up` (podns/cli/datadir.py): a data dir
of a newer format, an unwritable one, or one in use by another podns process is refused with
one line and exit code 1, before anything is written or served. API servers of one cluster
(`--pki-from`) each lock their own data dir and run side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._support import free_port, without_permission_bypass

pytestmark = pytest.mark.timeout(60)


def apiserver_cmd(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "podns", "apiserver", "--data-dir", str(data_dir),
            "--api-addr", f"127.0.0.1:{free_port()}", *args]


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line the command printed (asserting there was just one, and no traceback)."""
    out = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    return out


def podns_up(tmp_path: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `podns up` on `data_dir` with free ports (it must fail)."""
    cmd = [sys.executable, "-m", "podns", "up", "--data-dir", str(data_dir),
           "--api-addr", f"127.0.0.1:{free_port()}", "--dns-addr", f"127.0.0.1:{free_port()}",
           "--dns-upstream", "none"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=tmp_path)


def podns_apiserver(tmp_path: Path, *args: str, data_dir: Path | None = None,
                    prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `podns apiserver` to completion (it must fail); output merged by one_line."""
    cmd = [*(prefix or []), *apiserver_cmd(data_dir or tmp_path / "state", *args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=tmp_path,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


def start_apiserver(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    """Start `podns apiserver` and return once it serves (its "serving" line)."""
    proc = subprocess.Popen(apiserver_cmd(data_dir, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "serving" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"podns apiserver did not start (exit {proc.poll()})")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_data_dir_from_newer_version(tmp_path: Path) -> None:
    """Given a data dir of a newer format, podns apiserver refuses without touching it."""
    state = tmp_path / "state"
    state.mkdir()
    marker = {"format": 99, "podnsVersion": "9.0.0", "created": "2030-01-01T00:00:00Z"}
    (state / "podns-data.json").write_text(json.dumps(marker))
    proc = podns_apiserver(tmp_path)
    line = one_line(proc)
    assert proc.returncode == 1
    assert line.startswith("podns apiserver: data dir ")
    assert "newer podns (9.0.0, data format 99)" in line
    assert "upgrade podns" in line and "--data-dir" in line
    assert sorted(p.name for p in state.iterdir()) == ["podns-data.json"]


def test_data_dir_not_writable(tmp_path: Path) -> None:
    """Given a read-only data dir, podns apiserver says so and how to fix it (as root, without
    the capabilities that bypass permissions, as in test_up_errors)."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    prefix = without_permission_bypass()
    try:
        proc = podns_apiserver(tmp_path, prefix=prefix)
    finally:
        state.chmod(0o755)
    line = one_line(proc)
    assert proc.returncode == 1
    assert "is not writable" in line and "chmod" in line and "--data-dir" in line


def test_data_dir_in_use_and_pki_sharing(tmp_path: Path) -> None:
    """A running podns apiserver locks its data dir: a second apiserver or a podns up on it is
    refused naming the holder; a peer with its own data dir and --pki-from the first starts."""
    first_dir, peer_dir = tmp_path / "a", tmp_path / "b"
    first = start_apiserver(first_dir)
    try:
        assert json.loads((first_dir / "podns-data.json").read_text())["format"] >= 1
        proc = podns_apiserver(tmp_path, data_dir=first_dir)
        line = one_line(proc)
        assert proc.returncode == 1
        assert f"in use by another podns apiserver (pid {first.pid})" in line
        assert "--data-dir" in line
        up = podns_up(tmp_path, first_dir)
        assert up.returncode == 1
        assert f"in use by another podns apiserver (pid {first.pid})" in one_line(up)
        peer = start_apiserver(peer_dir, "--pki-from", str(first_dir))
        try:
            assert (peer_dir / "ca.crt").read_bytes() == (first_dir / "ca.crt").read_bytes()
        finally:
            stop(peer)
    finally:
        stop(first)
    # the lock goes with the process: the data dir is usable again
    again = start_apiserver(first_dir)
    stop(again)
