"""`podns node`: a second node agent joins a running cluster and runs the pods bound to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Podns
from tests.e2e.test_node_pods import get_pod, pod_manifest, ready_ip, talk, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_second_node_joins_and_runs_its_pods(podns: Podns, tmp_path: Path) -> None:
    """given `podns up` (node one), `podns kubeconfig node n2` (its identity, written where the
    joining machine would copy it) and `podns node --name n2` with it, n2 registers as
    system:node:n2 with its own pod CIDR, runs a pod bound to it on an address of that CIDR, and
    stops it when it exits."""
    n2_kubeconfig = tmp_path / "n2.kubeconfig"
    made = subprocess.run([sys.executable, "-m", "podns", "kubeconfig", "node", "n2", "--data-dir",
                           str(podns.data_dir), "--output", str(n2_kubeconfig)],
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "user system:node:n2" in made.stdout
    assert n2_kubeconfig.stat().st_mode & 0o077 == 0  # it holds a private key
    log = open(tmp_path / "n2.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "podns", "node", "--kubeconfig", str(n2_kubeconfig),
                             "--pki-from", str(podns.data_dir),
                             "--name", "n2", "--data-dir", str(tmp_path / "n2"),
                             "--pod-network", "loopback"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def n2() -> dict | None:
            r = podns.kubectl("get", "node", "n2", "-o", "json")
            return json.loads(r.stdout) if r.returncode == 0 else None

        node = wait(n2, what="node n2 registered")
        nodes = json.loads(podns.kubectl("get", "nodes", "-o", "json").stdout)["items"]
        cidrs = {n["metadata"]["name"]: n["spec"].get("podCIDR") for n in nodes}
        assert len(set(cidrs.values())) == len(nodes) == 2, cidrs
        n2_cidr = node["spec"]["podCIDR"]
        assert n2_cidr.startswith("127.") and n2_cidr.endswith(".0.0/16")

        pod = json.loads(pod_manifest("on-n2"))
        pod["spec"]["nodeName"] = "n2"
        assert podns.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod)).returncode == 0
        ip = wait(lambda: ready_ip(podns, "on-n2"), what="pod on n2 Ready")
        assert ip.startswith(n2_cidr.split(".0.0/")[0] + ".") and talk(ip) == "on-n2"
        assert (get_pod(podns, "on-n2") or {})["spec"]["nodeName"] == "n2"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(20)
        log.close()
    assert code == 0, (tmp_path / "n2.log").read_text()
    with pytest.raises(OSError):
        talk(ip)
