"""`podns up` stopped by SIGTERM or Ctrl-C (SIGINT) while it is still starting.

A signal while the API server, the node agent or the cluster DNS starts must stop what has
started and exit as after a normal stop (code 0, "stopped", no traceback), leaving no child
behind: the default SIGTERM action killed the process and left the supervised DNS child running,
and Ctrl-C skipped the API server's clean-up with exit code 130. Each case runs a real
`podns up` on ports 0 (never a port picked beforehand) with a fresh data dir, and watches its
output for the phase to interrupt.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests._support import closed_loopback_port, signal_while_starting

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.mark.parametrize(("phase", "waiting_for", "sig"), [
    ("api", "podns: waiting for the store", signal.SIGTERM),
    ("node", "podns up: starting node", signal.SIGINT),
    ("dns", "podns up: starting dns", signal.SIGTERM),
], ids=["sigterm-api-server-waiting-for-its-store", "sigint-node-starting", "sigterm-dns-starting"])
def test_signal_while_starting_stops_what_started(tmp_path: Path, phase: str, waiting_for: str,
                                                  sig: signal.Signals) -> None:
    """Given `podns up` in the middle of starting `phase`, when it gets `sig`, then it exits 0
    saying it stopped while starting, without a traceback, and no process of its session (the
    supervised DNS child included) is left."""
    args = [sys.executable, "-m", "podns", "up", "--data-dir", str(tmp_path / "state"),
            "--api-addr", "127.0.0.1:0", "--dns-addr", "127.0.0.1:0", "--dns-upstream", "none",
            "--pod-network", "loopback"]
    if phase == "api":
        args += ["--store", f"etcd://127.0.0.1:{closed_loopback_port()}"]  # waits 60 s for it
    code, log, left = signal_while_starting(args, tmp_path / "podns-up.log", waiting_for, sig, tmp_path)
    assert code == 0, log
    assert "podns up: stopping while starting (signal)" in log, log
    assert log.rstrip().endswith("podns up: stopped"), log
    assert "Traceback" not in log, log
    assert not left, (left, log)
