"""Flags with impossible values fail at start-up with one line naming the flag, exit code 2
(argparse's usage error), before anything is started: not later as a traceback or as a 400 that
blames a user's object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podns.node import netns

REPO = Path(__file__).resolve().parents[2]

CASES = [
    (["apiserver", "--service-cidr", "10.0.0.0/33"], "--service-cidr"),
    (["up", "--service-cidr", "10.96.0.0/8"], "--service-cidr"),  # too large, as kube-apiserver says
    (["up", "--service-cidr", "garbage"], "--service-cidr"),
    (["up", "--service-cidr", "10.96.0.0/16,10.97.0.0/16"], "--service-cidr"),  # two of one family
    (["up", "--service-cidr", "10.96.0.0/16,fd00::/64"], "--service-cidr"),  # IPv6 range too large
    (["up", "--service-cidr", "10.96.0.0/16,fd00::/127"], "--service-cidr"),  # too small
    (["apiserver", "--service-cidr", "10.96.0.0/16,fd00::/112,10.1.0.0/16"], "--service-cidr"),
    (["node", "--pod-network", "loopback", "--pod-cidr", "127.9.0.0/16,fd00::/64"], "--pod-cidr"),
    (["node", "--pod-cidr", "fd00::/64,fd01::/64"], "--pod-cidr"),
    (["up", "--pod-network", "loopback", "--service-cidr", "127.96.0.0/16,fd00::/112"], "--service-cidr"),
    (["up", "--pod-network", "loopback", "--pod-cidr", "127.9.0.0/16,fd00::/64"], "--pod-cidr"),
    (["node", "--pod-network", "loopback", "--pod-cidr", "garbage"], "--pod-cidr"),
    (["node", "--pod-network", "loopback", "--pod-cidr", "10.0.0.0/24"], "--pod-cidr"),  # not 127/8
    (["apiserver", "--store-wait", "-1"], "--store-wait"),
    (["apiserver", "--store-wait", "nan"], "--store-wait"),
    (["node", "--node-ip", "notanip"], "--node-ip"),
    (["node", "--node-ip", "192.168.1.2,192.168.1.3"], "--node-ip"),  # two of one family
    (["up", "--node-ip", "192.168.1.2,fd00::2,fd00::3"], "--node-ip"),
    (["up", "--pod-network", "loopback", "--cluster-cidr", "10.244.0.0/16,fd00::/56"], "--cluster-cidr"),
    (["node", "--node-port", "70000"], "--node-port"),
    (["up", "--node-port", "-1"], "--node-port"),
    (["up", "--proxy-mode", "ipvs"], "--proxy-mode"),
    (["up", "--service-node-port-range", "32767-30000"], "--service-node-port-range"),
    (["apiserver", "--service-node-port-range", "30000-70000"], "--service-node-port-range"),
    (["apiserver", "--service-node-port-range", "ports"], "--service-node-port-range"),
    (["up", "--pod-network", "loopback", "--proxy-mode", "iptables"], "--proxy-mode"),  # kernel NAT: netns
    (["node", "--pod-network", "loopback", "--proxy-mode", "nftables"], "--proxy-mode"),
]
if netns.unavailable_reason() is None:  # the IPv4 pod range netns mode needs (checked once it can run)
    CASES.append((["up", "--pod-network", "netns", "--cluster-cidr", "fd00:10:244::/56"], "--cluster-cidr"))


@pytest.mark.parametrize(("argv", "flag"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_flag_is_one_line_exit_2(tmp_path: Path, argv: list[str], flag: str) -> None:
    """given an impossible flag value, the command exits 2 at once with one line naming it."""
    extra = ["--kubeconfig", str(tmp_path / "kubeconfig")] if argv[0] == "node" else []
    extra += ["--data-dir", str(tmp_path / "state")] if argv[0] != "node" else []
    try:
        proc = subprocess.run([sys.executable, "-m", "podns", *argv, *extra], capture_output=True,
                              text=True, timeout=20, cwd=tmp_path, env={"PYTHONPATH": str(REPO),
                                                                        "PATH": "/usr/bin:/bin"})
    except subprocess.TimeoutExpired:
        pytest.fail(f"podns {' '.join(argv)} started instead of refusing {flag}")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and flag in lines[0], proc.stderr
    assert not (tmp_path / "state").exists()
