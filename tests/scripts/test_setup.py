"""scripts/setup.sh as root on a machine missing every Debian package: what it installs for running
podns (`setup.sh`) and for its tests (`setup.sh --test`), and that it never stops a process it did
not start (no `systemctl disable --now`, no `pkill`), keeping Debian's postinst from starting the
services it installs instead (a policy-rc.d present during apt-get only).

apt-get, systemctl, pkill and killall are stand-ins on PATH that record their arguments; the
script runs in a copy of the repository's setup files with a prepared .venv, so pip is not run."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST_ONLY = {"chromium", "etcd-server", "bind9-dnsutils", "postgresql", "etcd-client", "busybox-static"}
#: what the stand-ins record: their name, their arguments, and whether the policy refused starts
RECORDER = """#!/bin/sh
policy=refuses
"$PODNS_POLICY_RC_D" etcd start >/dev/null 2>&1; [ $? = 101 ] || policy=allows
echo "$(basename "$0") $* policy=$policy" >> "$CALLS"
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="setup.sh installs packages only as root")


def _setup(tmp_path: Path, *args: str) -> tuple[list[str], Path]:
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / ".venv" / "bin").mkdir(parents=True)
    os.symlink(shutil.which("python3") or "/usr/bin/python3", root / ".venv" / "bin" / "python")
    for stamp in (".podns-installed", ".podns-installed-test"):
        (root / ".venv" / stamp).touch()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("apt-get", "systemctl", "pkill", "killall", "service"):
        (bin_dir / tool).write_text(RECORDER)
        (bin_dir / tool).chmod(0o755)
    for tool in ("dirname", "touch", "id", "cat", "rm", "chmod", "mv", "sh", "basename", "env", "mkdir"):
        real = shutil.which(tool)
        if real:
            os.symlink(real, bin_dir / tool)
    calls = tmp_path / "calls"
    calls.touch()
    policy = tmp_path / "policy-rc.d"
    env = {"PATH": str(bin_dir), "CALLS": str(calls), "PODNS_POLICY_RC_D": str(policy), "HOME": str(tmp_path),
           "PODNS_PG_SERVER": str(tmp_path / "no-postgresql" / "*" / "bin" / "postgres")}
    out = subprocess.run(["/bin/bash", str(root / "scripts" / "setup.sh"), *args], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return calls.read_text().splitlines(), policy


def _installed(calls: list[str]) -> set[str]:
    pkgs: set[str] = set()
    for call in calls:
        words = call.split()
        if words[0] == "apt-get" and "install" in words:
            pkgs |= {w for w in words[words.index("install") + 1:] if not w.startswith(("-", "policy="))}
    return pkgs


def test_run_setup_installs_only_what_running_needs(tmp_path: Path) -> None:
    """given no Debian package, `setup.sh` (what ./run.sh calls) as root installs iproute2, podman
    and runc (the podman container runtime) and none of the test-only packages (chromium, etcd,
    dig, busybox-static)."""
    calls, _ = _setup(tmp_path)
    installed = _installed(calls)
    assert {"iproute2", "podman", "runc"} <= installed
    assert not installed & TEST_ONLY, installed


def test_test_setup_installs_the_test_packages_and_stops_nothing(tmp_path: Path) -> None:
    """given no Debian package, `setup.sh --test` installs the test packages with a policy-rc.d
    refusing service starts during apt-get (removed afterwards), and calls no systemctl, service,
    pkill or killall."""
    calls, policy = _setup(tmp_path, "--test")
    assert TEST_ONLY <= _installed(calls)
    assert not [c for c in calls if c.split()[0] in ("systemctl", "pkill", "killall", "service")], calls
    installs = [c for c in calls if c.startswith("apt-get") and " install " in f" {c} "]
    assert installs and all(c.endswith("policy=refuses") for c in installs), installs
    assert not policy.exists()


def test_an_existing_policy_rc_d_is_left_alone(tmp_path: Path) -> None:
    """given a policy-rc.d the machine already has, setup neither replaces nor removes it."""
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    _setup(tmp_path, "--test")
    assert policy.read_text() == "#!/bin/sh\nexit 101\n"
