"""Standalone `podns apiserver` and `podns node` stopped by SIGTERM or Ctrl-C while starting.

Each waits for something at start (the API server for its store, the node agent for the API
server): a signal then must unwind what started and exit 0 saying so, without a traceback and
without leaving a process of its session, as `podns up` does (test_up_signals). Before, the
default SIGTERM action killed them mid-start (the node agent's pod network and data-dir lock
left as they were) and Ctrl-C ended in a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._support import closed_loopback_port, signal_while_starting

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def interrupt(tmp_path: Path, args: list[str], waiting_for: str, sig: signal.Signals) -> str:
    """Run `podns <args>` until it prints `waiting_for`, send `sig`; return its output after
    checking it exited 0 with nothing of its session left behind."""
    code, log, left = signal_while_starting([sys.executable, "-m", "podns", *args],
                                            tmp_path / f"{args[0]}.log", waiting_for, sig, tmp_path)
    assert code == 0, log
    assert f"podns {args[0]}: stopped while starting (signal)" in log, log
    assert "Traceback" not in log, log
    assert not left, (left, log)
    return log


def serve_once(tmp_path: Path, data: Path) -> None:
    """Start `podns apiserver` on `data` until it serves, then stop it (exit 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "podns", "apiserver", "--data-dir", str(data),
                             "--api-addr", "127.0.0.1:0", "--store", "memory://"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert "podns apiserver: serving" in line, line + proc.stdout.read()
        proc.terminate()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_apiserver_waiting_for_its_store(tmp_path: Path, sig: signal.Signals) -> None:
    """Given `podns apiserver` waiting for an etcd that refuses connections, a signal stops it
    cleanly, and its data dir can be used again at once (the lock was released)."""
    data = tmp_path / "api"
    store = f"etcd://127.0.0.1:{closed_loopback_port()}"
    interrupt(tmp_path, ["apiserver", "--data-dir", str(data), "--api-addr", "127.0.0.1:0",
                         "--store", store], "podns: waiting for the store", sig)
    serve_once(tmp_path, data)

def test_node_waiting_for_the_api_server(tmp_path: Path) -> None:
    """Given `podns node` whose API server is gone (its PKI and kubeconfig exist, nothing
    listens), SIGTERM while it retries stops it cleanly."""
    api = tmp_path / "api"
    serve_once(tmp_path, api)
    interrupt(tmp_path, ["node", "--kubeconfig", str(api / "kubeconfig"), "--pki-from", str(api),
                         "--name", "sigterm-node", "--pod-network", "loopback",
                         "--data-dir", str(tmp_path / "node")],
              "listing Nodes failed", signal.SIGTERM)
