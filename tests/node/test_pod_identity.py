"""What real programs (PostgreSQL, etcd) need from the process runtime: the stop signal of
`lifecycle.stopSignal`, `runAsUser` with a uid the host does not know, `fsGroup` on volumes,
the pod's host name, /etc/hosts and a /dev/shm of its own (namespace mode, root)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import stat
from pathlib import Path

import pytest

from podns.node import netns, volumes
from podns.node.container import ContainerRunner
from podns.node.ipam import IPAM
from podns.node.logs import LogOptions, read_lines
from podns.node.podnetwork import PodNetwork
from podns.node.sandbox import DEFAULT_SHM_SIZE, user_db
from tests.node.conftest import PY, FakeAgent, make_pod

pytestmark = pytest.mark.timeout(30)
NETNS_SKIP = netns.unavailable_reason()
needs_netns = pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing group ownership needs root")


@pytest.mark.parametrize(("lifecycle", "expected"), [
    ({}, "SIGTERM"), ({"stopSignal": "SIGINT"}, "SIGINT"), ({"stopSignal": "QUIT"}, "SIGQUIT"),
    ({"stopSignal": "SIGBOGUS"}, "SIGTERM"),
], ids=["default", "sigint", "without-prefix", "unknown"])
def test_stop_signal_follows_lifecycle(lifecycle: dict[str, str], expected: str) -> None:
    """given `lifecycle.stopSignal`, the container is asked to stop with that signal (SIGTERM when
    unset or unknown)."""
    runner = ContainerRunner(None, {"name": "c", "lifecycle": lifecycle})  # type: ignore[arg-type]
    assert runner.stop_signal() == signal.Signals[expected]


async def test_deletion_sends_the_stop_signal(agent: FakeAgent) -> None:
    """given `lifecycle.stopSignal: SIGINT` (PostgreSQL's fast shutdown), deleting the pod sends
    SIGINT, not SIGTERM, and the process exits cleanly within the grace period."""
    script = ("import signal, sys, time\n"
              "signal.signal(signal.SIGINT, lambda *a: (print('got SIGINT'), sys.exit(0)))\n"
              "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM'), sys.exit(1)))\n"
              "print('up', flush=True)\n"
              "while True: time.sleep(0.05)\n")
    c = {"name": "db", "command": [PY, "-c", script], "lifecycle": {"stopSignal": "SIGINT"}}
    w = agent.start(make_pod("db-0", [c]))
    await agent.wait_for(lambda s: s["phase"] == "Running")
    for _ in range(100):
        lines, _ = read_lines(w.runners[0].log_path(), LogOptions())
        if lines:
            break
        await asyncio.sleep(0.05)
    w.request_termination(grace=5)
    st = await agent.wait_for(lambda s: s["phase"] in ("Succeeded", "Failed"))
    lines, _ = read_lines(w.runners[0].log_path(), LogOptions())
    assert b"got SIGINT\n" in lines and st["phase"] == "Succeeded", lines


def test_user_db_adds_only_unknown_ids(tmp_path: Path) -> None:
    """given a uid/gid the host does not know, copies of passwd/group gain an entry named after
    the number; ids the host knows (root) need no copies."""
    assert user_db(tmp_path / "a", 0, 0) == ("", "")
    passwd, group = user_db(tmp_path / "b", 4242999, 4242998)
    assert Path(passwd).read_text().endswith("4242999:x:4242999:4242998:container user:/:/usr/sbin/nologin\n")
    assert Path(group).read_text().endswith("4242998:x:4242998:\n")
    assert "root:" in Path(passwd).read_text()  # the host's entries stay
    assert stat.S_IMODE(os.stat(passwd).st_mode) == 0o644


@needs_root
def test_fs_group_ownership_and_on_root_mismatch(tmp_path: Path) -> None:
    """given fsGroup 4343: the volume tree gets group 4343, group rw, set-gid directories; with
    OnRootMismatch a volume whose root already has them is not walked again."""
    vol = tmp_path / "vol"
    (vol / "sub").mkdir(parents=True)
    (vol / "sub" / "f").write_text("x")
    os.chmod(vol / "sub" / "f", 0o600)
    volumes.set_ownership(vol, 4343)
    for path, mode in ((vol, 0o2770), (vol / "sub", 0o2770), (vol / "sub" / "f", 0o660)):
        st = path.stat()
        assert st.st_gid == 4343 and stat.S_IMODE(st.st_mode) & mode == mode, (path, oct(st.st_mode))
    os.chmod(vol / "sub" / "f", 0o600)  # a program tightened its own file
    volumes.set_ownership(vol, 4343, policy="OnRootMismatch")
    assert stat.S_IMODE((vol / "sub" / "f").stat().st_mode) == 0o600
    volumes.set_ownership(vol, 4343, policy="Always")
    assert stat.S_IMODE((vol / "sub" / "f").stat().st_mode) == 0o660


def test_shm_size_default_and_memory_volume() -> None:
    """/dev/shm is 64 MiB unless a Memory emptyDir with a sizeLimit is mounted there."""
    c = {"name": "c", "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}
    assert volumes.shm_size(make_pod("p", [c]), c) == (DEFAULT_SHM_SIZE, False)
    pod = make_pod("p", [c], volumes=[{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}])
    assert volumes.shm_size(pod, c) == (2**30, True)


def test_hosts_file_names_the_pod() -> None:
    """the pod's /etc/hosts maps its address to `<hostname>.<subdomain>.<ns>.svc.<zone>` and its
    host name, after localhost, then hostAliases."""
    pod = {"metadata": {"name": "db-1", "namespace": "shop"},
           "spec": {"hostname": "db-1", "subdomain": "db-service",
                    "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["legacy"]}]}}
    text = netns.hosts_file(pod, pod_ip="10.244.3.7", zone="cluster.local")
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert "10.244.3.7\tdb-1.db-service.shop.svc.cluster.local\tdb-1" in lines
    assert lines[-1] == "10.0.0.9\tlegacy"


def test_hosts_file_dual_stack() -> None:
    """a dual-stack pod's /etc/hosts has a line per address, IPv4 first, as the kubelet writes it."""
    pod = {"metadata": {"name": "db-0", "namespace": "default"}, "spec": {}}
    text = netns.hosts_file(pod, pod_ip="10.244.3.7", zone="cluster.local", pod_ip6="fd00:10:244:3::7")
    lines = text.splitlines()
    assert lines[-2:] == ["10.244.3.7\tdb-0", "fd00:10:244:3::7\tdb-0"]


@needs_netns
async def test_container_identity_in_namespace_mode(agent: FakeAgent, network: PodNetwork) -> None:
    """given runAsUser 4242 (unknown to the host), runAsGroup 4242, fsGroup 4343 and an emptyDir:
    the process runs as 4242 with 4343 among its groups, its user has a name, it can write the
    volume (group 4343), and it sees the pod's host name, /etc/hosts and a 64 MiB /dev/shm."""
    agent.network = network
    agent.ipam = IPAM(network.cidr)
    script = ("import os, pwd, socket\n"
              "open('/data/f', 'w').write('x')\n"
              "st = os.statvfs('/dev/shm')\n"
              "print(os.getuid(), os.getgid(), sorted(os.getgroups()), pwd.getpwuid(os.getuid()).pw_name,\n"
              "      os.stat('/data').st_gid, socket.gethostname(), st.f_blocks * st.f_frsize)\n"
              "print(open('/etc/hosts').read().splitlines()[-1])\n")
    # the system's python: the test's own may live below a directory only root may enter
    py = shutil.which("python3", path="/usr/bin:/bin") or PY
    c = {"name": "c", "command": [py, "-c", script], "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    pod = make_pod("db-1", [c], restartPolicy="Never", hostname="db-1", subdomain="db-service",
                   securityContext={"runAsUser": 4242, "runAsGroup": 4242, "fsGroup": 4343},
                   volumes=[{"name": "data", "emptyDir": {}}])
    w = agent.start(pod)
    st = await agent.wait_for(lambda s: s["phase"] in ("Succeeded", "Failed"))
    lines, _ = read_lines(w.runners[0].log_path(), LogOptions())
    assert st["phase"] == "Succeeded", (lines, st["containerStatuses"], agent.events)
    assert lines[0] == f"4242 4242 [4343] 4242 4343 db-1 {DEFAULT_SHM_SIZE}\n".encode()
    assert lines[1] == f"{st['podIP']}\tdb-1.db-service.default.svc.cluster.local\tdb-1\n".encode()
