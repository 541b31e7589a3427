"""End-to-end fixtures: a real `podns up` (or `podns apiserver`) process on free loopback ports.

Usage in a test module:

    def test_x(podns):                      # fresh cluster per test
        podns.kubectl("get", "ns").stdout

    def test_y(podns_module): ...           # one cluster shared by the module

    @pytest.mark.podns_args("--no-node")    # extra `podns up` flags for `podns`/`podns_module`
    def test_z(podns): ...

    def test_w(start_podns):                # factory: any number of clusters, any flags
        a = start_podns("--no-dns", command="up")

A `Podns` gives `.kubeconfig`, `.readonly_kubeconfig`, `.controller_manager_kubeconfig`,
`.dns_kubeconfig`, `.api_url`, `.dns_addr` (host, port),
`.data_dir`, `.admin_token`, `.readonly_token`, `.ca_path`, `.log_path`,
`.kubectl(*args, version="1.33")` (the versioned kubectl binary, or "installed" for the one on
PATH, with this KUBECONFIG and a private --cache-dir), `.stop()` (SIGTERM), `.kill()`
(SIGKILL), `.start()`, `.restart()` (same data dir and ports). The process's output goes to
`.log_path`; it is printed when start-up fails.

`etcd1` / `etcd3`: a real etcd cluster of 1 / 3 members on loopback for one test (skipped
without the etcd binary).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._support import free_port, kubectl_binary
from tests.etcd_cluster import EtcdCluster, etcd_available, start_etcd_cluster

REPO = Path(__file__).resolve().parents[2]
#: seconds `podns up` gets to answer /readyz
START_TIMEOUT = 30.0


class PortTaken(RuntimeError):
    """The process could not bind its port (taken since `free_port` chose it)."""


class Podns:
    """One podns process with its own data dir and ports."""

    def __init__(self, workdir: Path, *extra_args: str, command: str = "up") -> None:
        self.workdir = workdir
        self.data_dir = workdir / "state"
        self.command = command
        self.extra_args = list(extra_args)
        #: environment variables that replace the test's own for the podns process (e.g. PATH)
        self.env: dict[str, str] = {}
        self.api_port = free_port()
        self.dns_addr = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
        self.api_url = f"https://127.0.0.1:{self.api_port}"
        self.kubeconfig = self.data_dir / "kubeconfig"
        self.readonly_kubeconfig = self.data_dir / "kubeconfig-readonly"
        #: the components' own identities, written by the API server (docs/security.md)
        self.controller_manager_kubeconfig = self.data_dir / "controller-manager.kubeconfig"
        self.dns_kubeconfig = self.data_dir / "dns.kubeconfig"
        self.ca_path = self.data_dir / "ca.crt"
        self.log_path = workdir / f"podns-{command}.log"
        self.cache_dir = workdir / "kubectl-cache"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0
        #: whether a start ever got ready: until then a port taken meanwhile means new ports
        #: (the API server may already have written its kubeconfig when the DNS bind fails)
        self._ever_ready = False

    # -- process control -----------------------------------------------------------------------

    def args(self) -> list[str]:
        cmd = [sys.executable, "-m", "podns", self.command, "--data-dir", str(self.data_dir),
               "--api-addr", f"127.0.0.1:{self.api_port}"]
        if self.command == "up":
            cmd += ["--dns-addr", f"{self.dns_addr[0]}:{self.dns_addr[1]}"]
            if not any(a.startswith("--dns-upstream") for a in self.extra_args):
                # Tests send DNS traffic to loopback only: no forwarding to this host's resolver.
                cmd += ["--dns-upstream", "none"]
            if not any(a.startswith("--pod-network") for a in self.extra_args):
                # the default is auto (netns as root): tests about loopback pods say so, which
                # keeps the suite's cost (and the machine's 10.244.x ranges) down
                cmd += ["--pod-network", "loopback"]
        return cmd + self.extra_args

    def start(self) -> Podns:
        """Start the process and wait until /readyz answers 200. Until a start has succeeded, a
        port another process took meanwhile (API or DNS) means new ports and another try."""
        for attempt in range(3):
            try:
                self._start()
                self._ever_ready = True
                return self
            except PortTaken:
                if self._ever_ready or attempt == 2:
                    raise
                self.api_port = free_port()
                self.dns_addr = ("127.0.0.1", free_port(socket.SOCK_DGRAM))
                self.api_url = f"https://127.0.0.1:{self.api_port}"
        raise AssertionError("unreachable")

    def _start(self) -> Podns:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log_start = len(self.log())
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0  # this run's output
        out = open(self.log_path, "ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT,
                                     cwd=self.workdir, env=env, start_new_session=True)
        out.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log()
                run = log[log_start:]
                # the bind's own error, or `podns up`'s preflight saying the same in its words
                if "Address already in use" in run or "the port is already in use" in run:
                    raise PortTaken(log)
                raise RuntimeError(f"podns {self.command} exited with {self.proc.returncode}:\n"
                                   + log[-20000:])
            if self._ready() and self._components_started():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"podns {self.command} not ready after {START_TIMEOUT}s:\n"
                           + self.log()[-20000:])

    def _ready(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        try:
            with urllib.request.urlopen(self.api_url + "/readyz", context=ctx, timeout=1) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _components_started(self) -> bool:
        """`podns up` starts its components after the API server answers /readyz; it prints
        `podns up: ready` once every one of them runs."""
        if self.command != "up":
            return True
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return b"podns up: ready" in f.read()
        except OSError:
            return False

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        """SIGKILL the process group (no clean shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self) -> Podns:
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- credentials -----------------------------------------------------------------------------

    def _token(self, path: Path) -> str:
        doc = yaml.safe_load(path.read_text())
        return str(doc["users"][0]["user"]["token"])

    @property
    def admin_token(self) -> str:
        return self._token(self.kubeconfig)

    @property
    def readonly_token(self) -> str:
        return self._token(self.readonly_kubeconfig)

    # -- clients ---------------------------------------------------------------------------------

    def kubectl(self, *args: str, version: str = "1.33", input: str | None = None,
                timeout: float = 60.0, kubeconfig: Path | None = None,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run `kubectl.<version> --cache-dir=<private> <args>` against this cluster."""
        cmd = [kubectl_binary(version), f"--cache-dir={self.cache_dir / version}", *args]
        env = dict(os.environ, KUBECONFIG=str(kubeconfig or self.kubeconfig))
        env.pop("HTTPS_PROXY", None)
        env.pop("https_proxy", None)
        return subprocess.run(cmd, input=input, capture_output=True, text=True, env=env,
                              timeout=timeout, check=check, cwd=self.workdir)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "podns_args(*args): extra flags for the podns fixture")


def _marker_args(request: pytest.FixtureRequest) -> list[str]:
    marker = request.node.get_closest_marker("podns_args")
    return list(marker.args) if marker else []


@pytest.fixture
def start_podns(tmp_path: Path) -> Iterator[Callable[..., Podns]]:
    """Factory: `start_podns(*extra_args, command="up")` -> a started Podns (stopped at teardown)."""
    started: list[Podns] = []

    def start(*extra_args: str, command: str = "up") -> Podns:
        workdir = tmp_path / f"podns{len(started)}"
        workdir.mkdir()
        p = Podns(workdir, *extra_args, command=command)
        started.append(p)
        return p.start()

    yield start
    for p in started:
        if p.stop() is None and p.proc is not None and p.proc.returncode is None:
            p.kill()


@pytest.fixture
def podns(start_podns: Callable[..., Podns], request: pytest.FixtureRequest) -> Podns:
    """A fresh `podns up` for one test."""
    return start_podns(*_marker_args(request))


@pytest.fixture(scope="module")
def podns_module(tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> Iterator[Podns]:
    """One `podns up` shared by the tests of a module (flags from a module-level podns_args)."""
    marker = request.node.get_closest_marker("podns_args")
    extra: list[Any] = list(marker.args) if marker else []
    p = Podns(tmp_path_factory.mktemp("podns"), *extra)
    p.start()
    yield p
    p.stop()


def _etcd(members: int) -> Iterator[EtcdCluster]:
    """A real etcd cluster of `members` on loopback ports, closed afterwards; skips the test
    when etcd is not installed."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    cluster = start_etcd_cluster(members)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def etcd1() -> Iterator[EtcdCluster]:
    """A one-member etcd for one test."""
    yield from _etcd(1)


@pytest.fixture
def etcd3() -> Iterator[EtcdCluster]:
    """A three-member etcd for one test."""
    yield from _etcd(3)
