"""Node agent end to end: `podns up` runs pods as processes with their own IPs (real kubectl)."""

from __future__ import annotations

import functools
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests._support import wait_until
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

SERVER = """
import os, socket, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0)))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((os.environ['POD_IP'], 5432)); s.listen()
print('serving on', os.environ['POD_IP'], 'as', os.environ['POD_NAME'], flush=True)
while True:
    c, _ = s.accept(); c.sendall(os.environ['POD_NAME'].encode()); c.close()
"""


def pod_manifest(name: str, **extra: Any) -> str:
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "db"}},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [{
                "name": "db", "image": "python", "command": [sys.executable, "-c", SERVER],
                "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "ports": [{"name": "pg", "containerPort": 5432}],
                "readinessProbe": {"tcpSocket": {"port": "pg"}, "periodSeconds": 1},
            }],
            **extra,
        },
    }
    return json.dumps(pod)


#: this module's polling defaults for tests._support.wait_until
wait = functools.partial(wait_until, timeout=20.0, step=0.1)


def get_pod(p: Podns, name: str) -> dict[str, Any] | None:
    r = p.kubectl("get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def ready_ip(p: Podns, name: str) -> str | None:
    pod = get_pod(p, name)
    if not pod:
        return None
    st = pod.get("status") or {}
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or [])
    return st.get("podIP") if ready else None


def talk(ip: str, port: int = 5432) -> str:
    with socket.create_connection((ip, port), timeout=2) as s:
        return s.recv(100).decode()


def test_pods_run_with_own_ips_and_terminate_gracefully(podns: Podns) -> None:
    """given two pods, each gets its own loopback IP and answers there as itself; kubectl shows
    them Running/Ready; deleting one sends SIGTERM and removes it from the API."""
    for name in ("db-0", "db-1"):
        r = podns.kubectl("apply", "--validate=false", "-f", "-", input=pod_manifest(name))
        assert r.returncode == 0, r.stderr
    ip0 = wait(lambda: ready_ip(podns, "db-0"), what="db-0 Ready")
    ip1 = wait(lambda: ready_ip(podns, "db-1"), what="db-1 Ready")
    assert ip0 != ip1 and ip0.startswith("127.") and ip1.startswith("127.")
    assert talk(ip0) == "db-0" and talk(ip1) == "db-1"
    wide = podns.kubectl("get", "pods", "-o", "wide").stdout
    assert "Running" in wide and ip0 in wide and "1/1" in wide

    node = json.loads(podns.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    lease = podns.kubectl("get", "lease", "-n", "kube-node-lease", node["metadata"]["name"], "-o", "json")
    assert json.loads(lease.stdout)["spec"]["holderIdentity"] == node["metadata"]["name"]

    t0 = time.monotonic()
    r = podns.kubectl("delete", "pod", "db-0", "--wait=true", timeout=30)
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 5  # the process honours SIGTERM: no need to wait the grace out
    assert get_pod(podns, "db-0") is None
    with pytest.raises(OSError):
        talk(ip0)
    assert talk(ip1) == "db-1"
    events = podns.kubectl("get", "events", "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Created", "Started", "Killing"} <= reasons


def test_bad_commands_report_status(podns: Podns) -> None:
    """given a pod whose command does not exist and one without a command, both get a clear
    container state reason and the node keeps running other pods."""
    bad = json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad"},
                      "spec": {"containers": [{"name": "a", "image": "x", "command": ["no-such-binary-xyz"]},
                                              {"name": "b", "image": "nginx"}]}})
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=bad).returncode == 0
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=pod_manifest("ok")).returncode == 0

    def reasons() -> dict[str, str] | None:
        pod = get_pod(podns, "bad") or {}
        out = {}
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            state = cs["state"].get("waiting") or cs["state"].get("terminated") or cs["lastState"].get(
                "terminated") or {}
            out[cs["name"]] = state.get("reason", "")
        return out if out.get("a") in ("StartError", "CrashLoopBackOff") and out.get("b") else None

    got = wait(reasons, what="bad pod reasons")
    assert got["b"] == "CreateContainerError"
    assert wait(lambda: ready_ip(podns, "ok"), what="ok Ready")


def test_agent_restart_keeps_ips_and_leaves_no_process(podns: Podns, tmp_path: Path) -> None:
    """given a running pod, stopping `podns up` stops its process; starting it again with the
    same data dir runs the pod again on the same IP."""
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=pod_manifest("db-0")).returncode == 0
    ip = wait(lambda: ready_ip(podns, "db-0"), what="db-0 Ready")
    assert talk(ip) == "db-0"
    podns.stop()
    with pytest.raises(OSError):
        talk(ip)
    podns.start()
    # the agent wrote Ready=False on its way down: Ready again means the pod really runs again
    assert wait(lambda: ready_ip(podns, "db-0"), what="db-0 Ready again") == ip
    assert talk(ip) == "db-0"
    pod = get_pod(podns, "db-0")
    assert pod is not None and pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_pods_die_with_a_killed_agent(podns: Podns) -> None:
    """given a running pod, SIGKILL of `podns up` (no clean shutdown) still takes the pod's
    process down (PR_SET_PDEATHSIG); the restarted agent runs the pod again."""
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=pod_manifest("db-0")).returncode == 0
    ip = wait(lambda: ready_ip(podns, "db-0"), what="db-0 Ready")
    assert talk(ip) == "db-0"
    podns.kill()

    def down() -> bool:
        try:
            talk(ip)
        except OSError:
            return True
        return False

    wait(down, timeout=5, what="pod process gone with the agent")
    podns.start()

    def up_again() -> bool:
        try:
            return talk(ip) == "db-0"
        except OSError:
            return False

    wait(up_again, what="pod running again")
