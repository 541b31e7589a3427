"""`podns up` on bad input: one clear line saying what is wrong and what to do, a non-zero exit.

Each test runs the real command (`python -m podns up ...`) in a subprocess and checks its exit
code and its whole output: exactly one line, naming the problem and the flag to change, and no
traceback. Nothing here gets as far as starting a component, so each run takes about a second.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests._support import free_port, without_permission_bypass

pytestmark = pytest.mark.timeout(30)


def podns_up(tmp_path: Path, *args: str, data_dir: Path | None = None,
             prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `podns up` with free ports and `data_dir` (default: tmp_path/state); output merged."""
    cmd = [*(prefix or []), sys.executable, "-m", "podns", "up",
           "--data-dir", str(data_dir or tmp_path / "state"),
           "--api-addr", f"127.0.0.1:{free_port()}", "--dns-addr", f"127.0.0.1:{free_port()}",
           "--dns-upstream", "none", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=tmp_path,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line `podns up` printed (asserting there was just one, and no traceback)."""
    out = (proc.stdout + proc.stderr).strip()
    assert "Traceback" not in out, out
    assert len(out.splitlines()) == 1, out
    return out


def test_unknown_flag(tmp_path: Path) -> None:
    """Given an unknown flag, podns up names it and points at --help, exit code 2."""
    proc = podns_up(tmp_path, "--bogus-flag")
    line = one_line(proc)
    assert proc.returncode == 2
    assert "unrecognized arguments: --bogus-flag" in line
    assert "podns up --help" in line


def test_bad_address_value(tmp_path: Path) -> None:
    """Given --api-addr without a port, podns up says which flag is wrong, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "podns", "up", "--api-addr", "localhost"],
                          capture_output=True, text=True, timeout=20, cwd=tmp_path)
    line = one_line(proc)
    assert proc.returncode == 2
    assert "--api-addr" in line and "host:port" in line


def test_data_dir_from_newer_version(tmp_path: Path) -> None:
    """Given a data dir whose format file says a newer format, podns up refuses and says what to do,
    without touching the data dir."""
    state = tmp_path / "state"
    state.mkdir()
    marker = {"format": 99, "podnsVersion": "9.0.0", "created": "2030-01-01T00:00:00Z"}
    (state / "podns-data.json").write_text(json.dumps(marker))
    proc = podns_up(tmp_path)
    line = one_line(proc)
    assert proc.returncode == 1
    assert "newer podns (9.0.0, data format 99)" in line
    assert "upgrade podns" in line and "--data-dir" in line
    assert json.loads((state / "podns-data.json").read_text()) == marker
    assert sorted(p.name for p in state.iterdir()) == ["podns-data.json"]


def test_unreadable_format_file(tmp_path: Path) -> None:
    """Given a format file that is not JSON, podns up says so instead of guessing the format."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "podns-data.json").write_text("{not json")
    proc = podns_up(tmp_path)
    line = one_line(proc)
    assert proc.returncode == 1
    assert "unreadable podns-data.json" in line and "--data-dir" in line


def test_data_dir_is_a_file(tmp_path: Path) -> None:
    """Given --data-dir naming a regular file, podns up says it is not a directory."""
    f = tmp_path / "afile"
    f.write_text("x")
    proc = podns_up(tmp_path, data_dir=f)
    line = one_line(proc)
    assert proc.returncode == 1
    assert "is a file, not a directory" in line and "--data-dir" in line


def test_data_dir_cannot_be_created(tmp_path: Path) -> None:
    """Given a data dir below a regular file, podns up says it cannot create it."""
    f = tmp_path / "afile"
    f.write_text("x")
    proc = podns_up(tmp_path, data_dir=f / "state")
    line = one_line(proc)
    assert proc.returncode == 1
    assert "cannot create data dir" in line and "--data-dir" in line


def test_data_dir_not_writable(tmp_path: Path) -> None:
    """Given a read-only data dir, podns up says it is not writable and how to fix it.

    As root, permissions do not apply, so the command runs without the capabilities that bypass
    them (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set)."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o555)
    prefix = without_permission_bypass()
    try:
        proc = podns_up(tmp_path, prefix=prefix)
    finally:
        state.chmod(0o755)
    line = one_line(proc)
    assert proc.returncode == 1
    assert "is not writable" in line and "chmod" in line and "--data-dir" in line


def test_api_port_in_use(tmp_path: Path) -> None:
    """Given an API port another process listens on, podns up says so and names --api-addr."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = podns_up(tmp_path, "--api-addr", f"127.0.0.1:{port}")
    line = one_line(proc)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in line and "already in use" in line and "--api-addr" in line


def test_dns_port_in_use_udp(tmp_path: Path) -> None:
    """Given a DNS port taken for UDP only, podns up says so and names --dns-addr; nothing was
    started (no kubeconfig written)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = podns_up(tmp_path, "--dns-addr", f"127.0.0.1:{port}")
    line = one_line(proc)
    assert proc.returncode == 1
    assert f"127.0.0.1:{port}" in line and "cluster DNS" in line and "--dns-addr" in line
    assert not (tmp_path / "state" / "kubeconfig").exists()


def test_data_dir_in_use(tmp_path: Path) -> None:
    """Given a data dir whose lock another process holds (as a running podns up does), podns up
    names that process and says what to do."""
    state = tmp_path / "state"
    state.mkdir()
    with open(state / "podns-up.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write(f"{os.getpid()}\n")
        held.flush()
        proc = podns_up(tmp_path)
    line = one_line(proc)
    assert proc.returncode == 1
    assert f"in use by another podns up (pid {os.getpid()})" in line and "--data-dir" in line
