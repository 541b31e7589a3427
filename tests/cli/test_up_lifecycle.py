"""`podns up` for a new user: says what runs where, stops cleanly on Ctrl-C, restarts from its data dir.

One real `podns up` process (the e2e harness's `Podns`), one pod whose command line carries a
unique marker so the test can find its process among everything else on the machine.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import uuid
from pathlib import Path

import pytest

from tests._support import wait_until
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def pids_with(marker: str) -> list[int]:
    """Live processes whose command line contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker.encode() in cmdline and not zombie:
            found.append(int(entry))
    return found


#: this module's polling defaults for tests._support.wait_until
wait_for = functools.partial(wait_until, step=0.1)


def pod_manifest(marker: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"containers": [{"name": "main", "image": "python:3.11",
                                 "command": ["python3", "-c", "import time; time.sleep(3600)", marker]}]},
    })


def test_up_prints_where_stops_on_ctrl_c_and_restarts(tmp_path: Path) -> None:
    """Given a fresh data dir, `podns up` prints API URL, dashboard, kubeconfig, DNS address, node
    and data dir; on Ctrl-C it exits 0 with no pod process left; started again on the same data
    dir it runs the same pod again with the same credentials and format file."""
    p = Podns(tmp_path)
    try:
        p.start()
        wait_for(lambda: "ready in" in p.log(), 20, "the ready summary")
        out = p.log()
        assert "Traceback" not in out
        summary = out[out.index("ready in"):]
        assert f"API server   {p.api_url}" in summary
        assert f"dashboard    {p.api_url}/ui/" in summary
        assert f"kubeconfig   {p.kubeconfig}" in summary
        assert f"cluster DNS  {p.dns_addr[0]}:{p.dns_addr[1]} (UDP and TCP)" in summary
        assert "/metrics" in summary
        assert "node         " in summary
        assert "pod network  loopback (as requested)" in summary
        assert f"data dir     {p.data_dir}" in summary
        for step in ("starting the API server", "starting controllers", "starting node", "starting dns"):
            assert step in out, out  # progress while starting
        fmt = json.loads((p.data_dir / "podns-data.json").read_text())
        assert fmt["format"] == 1
        token = p.admin_token

        marker = f"podns-test-{uuid.uuid4().hex}"
        r = p.kubectl("apply", "-f", "-", input=pod_manifest(marker))
        assert r.returncode == 0, r.stderr
        wait_for(lambda: pids_with(marker), 30, "the pod's process")

        assert p.proc is not None
        p.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert p.proc.wait(30) == 0
        assert "podns up: stopped" in p.log()
        wait_for(lambda: not pids_with(marker), 2, "no pod process left after Ctrl-C")

        p.start()  # same data dir, same ports
        wait_for(lambda: pids_with(marker), 30, "the pod's process after restart")
        assert p.admin_token == token
        assert json.loads((p.data_dir / "podns-data.json").read_text()) == fmt
        r = p.kubectl("get", "pod", "sleeper", "-o", "jsonpath={.status.phase}")
        assert r.stdout == "Running", (r.stdout, r.stderr)
        assert p.stop() == 0
        wait_for(lambda: not pids_with(marker), 2, "no pod process left after SIGTERM")
    finally:
        p.kill()
