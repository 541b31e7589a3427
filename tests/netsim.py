"""Simulated machines for end-to-end tests: network namespaces joined by a bridge LAN or a router.

A `Lab` owns everything it creates, all named `<prefix>-...` with a prefix unique to this process
and lab (`nsim<pid>x<n>`), and removes all of it on `close()` (also after a failure; use it as a
context manager or through the `lab` fixture of `tests/e2e/conftest.py`):

- `lab.lan("lan", "192.168.77.0/24")`: a switch, i.e. a namespace holding a bridge `br0` with no
  address (layer 2 only); `subnet6="fd77::/64"` gives its machines an IPv6 address too;
- `lab.machine("a", lan)`: a machine, i.e. a namespace with `lo` up and `eth0` (a veth whose other
  end is a port of the LAN's bridge) holding the next free address of the LAN;
- `lab.router("r", lan1, lan2)`: a machine on several LANs (`eth0`, `eth1`, ...) holding each LAN's
  gateway address (`.254`) with IP forwarding on; machines on those LANs created afterwards get a
  default route through it (so machines on different subnets reach each other only via the router,
  as VXLAN tests need).

`Machine.run(...)` / `Machine.popen(...)` run a command inside a machine (`ip netns exec`: its own
network stack and its own mount namespace for /sys); processes started with `popen` are stopped
(SIGTERM to their process group, then SIGKILL) by `close()` before the namespaces go.

Traffic stays inside these namespaces: nothing is added to the root namespace, so the machine the
tests run on sees no new link, route or address. A lab left by a killed test run (its pid gone) is
removed by the next `Lab()`.

Root only (`needs_root` is the skip marker with the reason).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import pytest

from tests._support import kubectl_binary

#: every lab's names start with this, then the creating pid (so a stale lab can be recognised)
BASE = "nsim"
NETNS_RUN = Path("/run/netns")
_counter = itertools.count()

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="simulated machines need root (network namespaces)")


class NetsimError(Exception):
    """An `ip` command of the lab failed (the message is the command and its stderr)."""


def ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    """`ip [-n ns] args...`; stdout. Raises NetsimError when `check` and it fails."""
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise NetsimError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return out.stdout


def _stale_labs() -> list[str]:
    """Namespaces of labs whose creating process is gone."""
    names = os.listdir(NETNS_RUN) if NETNS_RUN.is_dir() else []
    stale = []
    for name in names:
        m = re.fullmatch(rf"{BASE}(\d+)x\d+-.+", name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            stale.append(name)
    return stale


@dataclass
class Lan:
    """A switch: namespace `ns` with bridge `br0`; hands out the addresses of `subnet`."""

    lab: Lab
    name: str
    ns: str
    subnet: ipaddress.IPv4Network
    #: IPv6 subnet of the LAN (None: IPv4 only)
    subnet6: ipaddress.IPv6Network | None = None
    _next: int = 1
    #: the router's address on this LAN (None until a router joins it)
    gateway: str | None = None

    def take(self) -> tuple[str, str]:
        """The next free address, and its IPv6 twin ("" on an IPv4-only LAN)."""
        addr = str(self.subnet.network_address + self._next)
        addr6 = str(self.subnet6.network_address + self._next) if self.subnet6 else ""
        self._next += 1
        return addr, addr6


@dataclass
class Machine:
    """A simulated machine: namespace `ns`; `addr` (and `addr6`, on an IPv6 LAN) its address on
    its first LAN."""

    lab: Lab
    name: str
    ns: str
    addr: str = ""
    addr6: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def exec_args(self, *cmd: str) -> list[str]:
        """The argv that runs `cmd` inside this machine."""
        return ["ip", "netns", "exec", self.ns, *cmd]

    def run(self, *cmd: str, input: str | None = None, timeout: float = 60.0, check: bool = False,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `cmd` inside this machine and wait for it (output captured as text)."""
        return subprocess.run(self.exec_args(*cmd), input=input, capture_output=True, text=True,
                              timeout=timeout, check=check, env=env)

    def popen(self, *cmd: str, log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        """Start `cmd` inside this machine in its own session, output to `log`; `close()` stops it."""
        out: IO[bytes] = open(log, "ab")
        try:
            proc = subprocess.Popen(self.exec_args(*cmd), stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, env=env, cwd=cwd)
        finally:
            out.close()
        self.procs.append(proc)
        return proc

    def ip(self, *args: str, check: bool = True) -> str:
        return ip(*args, ns=self.ns, check=check)

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
        """SIGTERM the process group of `proc` and wait (SIGKILL after `timeout`); its exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return None
        return proc.returncode


class Lab:
    """See the module docstring."""

    def __init__(self) -> None:
        self.prefix = f"{BASE}{os.getpid()}x{next(_counter)}"
        self.namespaces: list[str] = []
        self.machines: list[Machine] = []
        self.lans: list[Lan] = []
        for name in _stale_labs():
            ip("netns", "del", name, check=False)

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _netns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        self.namespaces.append(ns)  # recorded first: a half-made namespace is removed too
        ip("netns", "add", ns)
        ip("link", "set", "lo", "up", ns=ns)
        return ns

    def lan(self, name: str, subnet: str, subnet6: str | None = None) -> Lan:
        """A switch for `subnet` (and `subnet6`: dual-stack) (a bridge in a namespace of its own)."""
        ns = self._netns(name)
        ip("link", "add", "br0", "type", "bridge", ns=ns)
        ip("link", "set", "br0", "up", ns=ns)
        lan = Lan(self, name, ns, ipaddress.IPv4Network(subnet),
                  ipaddress.IPv6Network(subnet6) if subnet6 else None)
        self.lans.append(lan)
        return lan

    def _plug(self, machine: Machine, lan: Lan, ifname: str, addr: str, addr6: str = "") -> None:
        port = f"{machine.name}-{ifname}"[:15]
        ip("link", "add", port, "type", "veth", "peer", "name", ifname, "netns", machine.ns, ns=lan.ns)
        ip("link", "set", port, "master", "br0", "up", ns=lan.ns)
        machine.ip("addr", "add", f"{addr}/{lan.subnet.prefixlen}", "dev", ifname)
        if addr6 and lan.subnet6 is not None:  # usable at once: no duplicate address detection
            machine.ip("-6", "addr", "add", f"{addr6}/{lan.subnet6.prefixlen}", "dev", ifname, "nodad")
        machine.ip("link", "set", ifname, "up")

    def machine(self, name: str, lan: Lan) -> Machine:
        """A machine on `lan` (default route via the LAN's router, if it has one)."""
        m = Machine(self, name, self._netns(name))
        m.addr, m.addr6 = lan.take()
        self._plug(m, lan, "eth0", m.addr, m.addr6)
        if lan.gateway:
            m.ip("route", "add", "default", "via", lan.gateway)
        self.machines.append(m)
        return m

    def router(self, name: str, *lans: Lan) -> Machine:
        """A machine forwarding between `lans`, holding address .254 of each."""
        m = Machine(self, name, self._netns(name))
        for i, lan in enumerate(lans):
            lan.gateway = str(lan.subnet.network_address + 254)
            self._plug(m, lan, f"eth{i}", lan.gateway)  # routes IPv4 only
        m.addr = str(lans[0].gateway)
        m.run("sysctl", "-qw", "net.ipv4.ip_forward=1", check=True)
        self.machines.append(m)
        return m

    def close(self) -> None:
        """Stop every process started in a machine, then delete every namespace of the lab (their
        links go with them)."""
        for m in self.machines:
            for proc in m.procs:
                m.stop(proc)
        for ns in reversed(self.namespaces):
            ip("netns", "del", ns, check=False)
        self.namespaces.clear()

    def leftovers(self) -> list[str]:
        """Namespaces of this lab that still exist (empty after `close()`)."""
        names = os.listdir(NETNS_RUN) if NETNS_RUN.is_dir() else []
        return [n for n in names if n.startswith(self.prefix + "-")]


# -- podns on simulated machines ---------------------------------------------------------------

#: seconds a control plane or node agent gets to come up (a loaded 2-core machine is slow)
START_TIMEOUT = 60.0
#: the control plane's ports on its machine's LAN address (the machine's own network: no clash)
API_PORT = 6443
DNS_PORT = 1053


@dataclass
class ControlPlane:
    """`podns up` running on `machine` (API and DNS on the machine's LAN address)."""

    machine: Machine
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def dns(self) -> str:
        return f"{self.machine.addr}:{DNS_PORT}"

    def kubectl(self, *args: str, on: Machine | None = None, input: str | None = None,
                timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`kubectl args...` run inside `on` (default: the control plane's machine)."""
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        env.pop("HTTPS_PROXY", None)
        env.pop("https_proxy", None)
        cache = self.data_dir.parent / "kubectl-cache"
        return (on or self.machine).run(kubectl_binary("1.33"), f"--cache-dir={cache}", *args,
                                        input=input, timeout=timeout, env=env)


def _wait_log(proc: subprocess.Popen[bytes], log: Path, marker: bytes, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        text = log.read_bytes() if log.exists() else b""
        if marker in text:
            return
        if proc.poll() is not None:
            tail = text.decode(errors="replace")[-8000:]
            raise NetsimError(f"{what} exited with {proc.returncode}:\n{tail}")
        time.sleep(0.1)
    raise NetsimError(f"{what} not up after {START_TIMEOUT}s:\n"
                      f"{log.read_bytes().decode(errors='replace')[-8000:]}")


def machine_env(machine: Machine, workdir: Path) -> dict[str, str]:
    """The environment of a podns process on `machine`: its own lock dir (a machine's /run/podns,
    where pod CIDR claims and namespace records live), so agents on different simulated machines
    never see each other's claims, nor those of podns processes on the real machine."""
    return dict(os.environ, PYTHONUNBUFFERED="1", PODNS_LOCK_DIR=str(workdir / f"{machine.name}-run"))


def node_ip(machine: Machine) -> str:
    """`--node-ip` of a podns node on `machine`: its LAN address, and its IPv6 one if it has one."""
    return f"{machine.addr},{machine.addr6}" if machine.addr6 else machine.addr


def podns_up(machine: Machine, workdir: Path, *extra: str) -> ControlPlane:
    """Start `podns up --pod-network netns` on `machine` (node named after the machine, process
    runtime, no DNS forwarding off the lab) and wait until it is ready."""
    data = workdir / f"{machine.name}-state"
    log = workdir / f"{machine.name}-up.log"
    proc = machine.popen(sys.executable, "-m", "podns", "up", "--data-dir", str(data),
                         "--api-addr", f"{machine.addr}:{API_PORT}",
                         "--dns-addr", f"{machine.addr}:{DNS_PORT}", "--dns-upstream", "none",
                         "--pod-network", "netns", "--container-runtime", "process",
                         "--node-name", machine.name, "--node-ip", node_ip(machine), *extra,
                         log=log, env=machine_env(machine, workdir), cwd=workdir)
    _wait_log(proc, log, b"podns up: ready", f"podns up on {machine.name}")
    return ControlPlane(machine, proc, data, log)


def podns_node(machine: Machine, cp: ControlPlane, workdir: Path, *extra: str,
               name: str | None = None, kubeconfig: Path | None = None) -> subprocess.Popen[bytes]:
    """Start `podns node --pod-network netns` on `machine`, joined to `cp`, and wait until it runs.
    The Node is named after the machine, or `name` (a second agent on one machine); `kubeconfig`:
    its identity (default: the control plane's admin kubeconfig, beside the CA)."""
    name = name or machine.name
    log = workdir / f"{name}-node.log"
    proc = machine.popen(sys.executable, "-m", "podns", "node",
                         "--kubeconfig", str(kubeconfig or cp.kubeconfig),
                         "--name", name, "--data-dir", str(workdir / f"{name}-node"),
                         "--pod-network", "netns", "--container-runtime", "process",
                         "--node-ip", node_ip(machine), "--cluster-dns", cp.dns, *extra,
                         log=log, env=machine_env(machine, workdir), cwd=workdir)
    _wait_log(proc, log, f"podns node: {name} running".encode(), f"podns node {name} on {machine.name}")
    return proc
