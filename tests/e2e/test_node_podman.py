"""`podns up --pod-network netns --container-runtime podman` end to end, as root with real podman.

The image is built here (no registry: `podman import` of a root file system made of Debian's
busybox-static, with ENTRYPOINT/CMD/ENV/WORKDIR set by `--change`), named with a prefix unique to
this run and removed afterwards. Every container the agent makes carries its labels; the tests
only ever look at (and remove) containers labelled with this agent's id.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podns.node import netns
from podns.node.runtime.podman import LABEL_AGENT, agent_id
from tests._support import free_service_cidr, kubectl_binary, wait_until
from tests.e2e import _images
from tests.e2e.conftest import Podns

NETNS_SKIP = netns.unavailable_reason()
SKIP = NETNS_SKIP or (None if shutil.which("podman") else "podman is not installed") or (
    None if _images.static_busybox() else "a static busybox (Debian busybox-static) is not installed")
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(240),
              pytest.mark.skipif(SKIP is not None, reason=SKIP or "")]

wait = functools.partial(wait_until, step=0.2)
PREFIX = f"localhost/podns-test-{os.getpid()}"
IMAGE = f"{PREFIX}-web:1"
PORT = 8080

SERVE = """#!/bin/sh
# the image's ENTRYPOINT: say who serves (pod host name, ConfigMap greeting, init container's file)
mkdir -p /www
greeting=$(cat /config/greeting 2>/dev/null)
echo "$(hostname) $greeting $(cat /shared/init.txt 2>/dev/null) $GREETING" > /www/index.html
echo "starting $(hostname) as $(id -u) in $(pwd)"
# PID 1 of a container gets only the signals it handles: stop httpd on SIGTERM, as a real server does
httpd -f -v -p "$@" -h /www &
trap 'echo "SIGTERM: stopping"; kill $!; exit 0' TERM
wait
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    _images.build(IMAGE, tmp_path_factory.mktemp("image"), script=SERVE, changes=[
        'ENTRYPOINT ["/entry.sh"]', f'CMD ["{PORT}"]', "ENV PATH=/bin", "ENV GREETING=from-image",
        "WORKDIR /srv"])
    yield IMAGE
    _images.remove(IMAGE)


@pytest.fixture(scope="module")
def cluster(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podns]:
    p = Podns(tmp_path_factory.mktemp("podns"), "--pod-network", "netns", "--container-runtime",
              "podman", "--image-pull-timeout", "3",
              "--service-cidr", free_service_cidr())  # not 10.96.0.0/16: other clusters run here
    p.start()
    yield p
    p.stop()
    left = ours(p)
    if left:  # never leave containers on a shared machine, even when an assertion failed
        subprocess.run(["podman", "rm", "--force", "--time", "0", *left], capture_output=True)
    assert not left, f"containers left after podns stopped: {left}"


def ours(p: Podns) -> list[str]:
    """IDs of the containers labelled with this podns's node agent."""
    owner = agent_id(p.data_dir / "node")
    out = subprocess.run(["podman", "ps", "--all", "--quiet", "--filter", f"label={LABEL_AGENT}={owner}"],
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def pod(p: Podns, name: str) -> dict[str, Any]:
    r = p.kubectl("get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def ready(obj: dict[str, Any]) -> bool:
    conds = (obj.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def waiting_reason(p: Podns, name: str) -> str:
    st = ((pod(p, name).get("status") or {}).get("containerStatuses") or [{}])[0]
    return str(((st.get("state") or {}).get("waiting") or {}).get("reason", ""))


def events(p: Podns, name: str) -> str:
    return p.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}",
                     "-o", "custom-columns=R:.reason,M:.message", "--no-headers").stdout


def fetch(ip: str) -> str:
    with urllib.request.urlopen(f"http://{ip}:{PORT}/index.html", timeout=3) as r:
        return r.read().decode()


def manifest(image: str) -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config}}
data: {{greeting: hello-from-configmap}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  clusterIP: None
  selector: {{app: web}}
  ports: [{{port: {PORT}}}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web}}
spec:
  serviceName: web
  replicas: 2
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 30
      initContainers:
      - name: init
        image: {image}
        command: ["/bin/sh", "-c", "echo init-done > /shared/init.txt"]
        volumeMounts: [{{name: work, mountPath: /shared}}]
      containers:
      - name: web
        image: {image}
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        ports: [{{containerPort: {PORT}}}]
        volumeMounts:
        - {{name: work, mountPath: /shared}}
        - {{name: config, mountPath: /config, readOnly: true}}
        readinessProbe:
          exec: {{command: ["/bin/sh", "-c", "test -f /www/index.html && test $POD_NAME = $(hostname)"]}}
          periodSeconds: 1
      volumes:
      - {{name: work, emptyDir: {{}}}}
      - {{name: config, configMap: {{name: web-config}}}}
"""


def test_statefulset_from_an_image(cluster: Podns, image: str) -> None:
    """given a headless Service and a StatefulSet whose image's ENTRYPOINT serves HTTP (no command
    in the spec), with an init container, a ConfigMap volume and an exec readiness probe that only
    passes inside the container: both pods become Ready with 10.244.x IPs, are in the cluster DNS,
    answer on their pod IPs with what the init container and the ConfigMap wrote, log their
    output, report the image and its ID; a container killed behind the agent's back restarts
    (logs --previous keep the first instance); a deleted pod stops at once on SIGTERM to PID 1
    (well inside its 30 s grace) and leaves no container."""
    p = cluster
    assert "containers   podman (--container-runtime podman; podman " in p.log()  # up's summary
    node = json.loads(p.kubectl("get", "nodes", "-o", "json", check=True).stdout)["items"][0]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("podman://")
    p.kubectl("apply", "-f", "-", input=manifest(image), check=True)
    wait(lambda: ready(pod(p, "web-0")) and ready(pod(p, "web-1")), 150, "web-0 and web-1 Ready")
    ips = {n: pod(p, n)["status"]["podIP"] for n in ("web-0", "web-1")}
    assert all(ip.startswith("10.244.") for ip in ips.values()), ips

    def dig() -> list[str]:
        return subprocess.run(["dig", f"@{p.dns_addr[0]}", "-p", str(p.dns_addr[1]), "+short",
                               "web-0.web.default.svc.cluster.local"], capture_output=True, text=True,
                              timeout=10).stdout.split()

    # Ready -> EndpointSlice -> DNS answer: a moment later
    assert wait(lambda: dig() == [ips["web-0"]], 30, "web-0 in the cluster DNS")
    assert fetch(ips["web-0"]).split() == ["web-0", "hello-from-configmap", "init-done", "from-image"]

    st = pod(p, "web-0")["status"]
    web = st["containerStatuses"][0]
    assert web["image"] == image and web["imageID"].startswith(image.rsplit(":", 1)[0] + "@sha256:")
    assert web["containerID"].startswith("podman://")
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    logs = p.kubectl("logs", "web-0").stdout
    assert "starting web-0 as 0 in /srv" in logs  # the image's WORKDIR and user
    assert "already present on machine" in events(p, "web-0")

    # inside the container: the pod's resolv.conf (cluster DNS, search path, ndots:5)
    cid = web["containerID"].removeprefix("podman://")
    resolv = subprocess.run(["podman", "exec", cid, "cat", "/etc/resolv.conf"], capture_output=True,
                            text=True, check=True).stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv
    assert "ndots:5" in resolv
    hosts = subprocess.run(["podman", "exec", cid, "cat", "/etc/hosts"], capture_output=True,
                           text=True, check=True).stdout
    assert f"{ips['web-0']}\tweb-0.web.default.svc.cluster.local\tweb-0" in hosts.replace(" ", "\t"), hosts

    # kubectl exec runs inside the container (podman exec): the image's PATH and WORKDIR
    assert p.kubectl("exec", "web-0", "--", "pwd").stdout.strip() == "/srv"
    assert p.kubectl("exec", "-i", "web-0", "--", "cat", input="through stdin\n").stdout == "through stdin\n"

    # a crash behind the agent's back: restarted per restartPolicy Always, same IP
    subprocess.run(["podman", "kill", "--signal", "KILL", cid], capture_output=True, check=True)
    wait(lambda: (s := pod(p, "web-0").get("status") or {}) and ready(pod(p, "web-0"))
         and s["containerStatuses"][0]["restartCount"] >= 1, 60, "web-0 restarted")
    again = pod(p, "web-0")["status"]["containerStatuses"][0]
    assert again["lastState"]["terminated"]["exitCode"] == 137
    assert "starting web-0" in p.kubectl("logs", "web-0", "--previous").stdout
    assert wait(lambda: fetch(ips["web-0"]).startswith("web-0"), 10, "web-0 serving again")

    # graceful deletion: SIGTERM to PID 1 (httpd), gone well before the 30 s grace
    before = set(ours(p))
    began = time.monotonic()
    p.kubectl("scale", "statefulset", "web", "--replicas=0", check=True)
    wait(lambda: not pod(p, "web-0") and not pod(p, "web-1"), 25, "pods deleted")
    assert time.monotonic() - began < 20
    assert not set(ours(p)) & before, "the deleted pods' containers are gone"


def test_agent_killed_then_restarted_cleans_and_restarts(cluster: Podns, image: str) -> None:
    """given a running pod, `podns up` killed with SIGKILL leaves its container running (conmon is
    not its child); started again, the agent removes it (found by label) and runs the pod again
    in a new container."""
    p = cluster
    p.kubectl("scale", "statefulset", "web", "--replicas=1", check=True)
    wait(lambda: ready(pod(p, "web-0")), 60, "web-0 Ready")
    old = set(ours(p))
    assert old
    p.kill()
    assert set(ours(p)) == old  # still there while no agent runs
    p.start()
    def restarted() -> bool:
        st = pod(p, "web-0").get("status") or {}
        cid = (st.get("containerStatuses") or [{}])[0].get("containerID", "").removeprefix("podman://")
        return ready(pod(p, "web-0")) and bool(cid) and cid[:12] not in {o[:12] for o in old}

    wait(restarted, 60, "web-0 Ready in a new container")
    assert not set(ours(p)) & old
    assert fetch(pod(p, "web-0")["status"]["podIP"]).startswith("web-0")
    p.kubectl("delete", "statefulset", "web", check=True)
    wait(lambda: not pod(p, "web-0"), 30, "web-0 deleted")
    wait(lambda: not ours(p), 10, "no container left")


def test_security_context_limits_hooks_and_follow(cluster: Podns, image: str, tmp_path: Path) -> None:
    """given a container (command replacing the ENTRYPOINT) with runAsUser 1000, a read-only root
    file system, memory/cpu limits, postStart and preStop exec hooks and a hostPath volume: it
    runs as uid 1000, cannot write its root but can its volume, podman enforces the limits where
    cgroups allow (else a LimitsNotEnforced Event), the postStart hook ran inside, `kubectl logs
    -f` streams new lines until the pod is deleted, and the preStop hook ran before SIGTERM."""
    p = cluster
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    loop = "echo started as $(id -u); trap 'echo bye; exit 0' TERM; while true; do echo tick; sleep 1; done"
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hooks"}, "spec": {
        "terminationGracePeriodSeconds": 10,
        "containers": [{
            "name": "c", "image": image, "command": ["/bin/sh", "-c", loop],
            "securityContext": {"runAsUser": 1000, "runAsNonRoot": True, "readOnlyRootFilesystem": True},
            "resources": {"limits": {"memory": "64Mi", "cpu": "200m"}},
            "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
            "lifecycle": {"postStart": {"exec": {"command": ["/bin/sh", "-c", "id -u > /shared/post"]}},
                          "preStop": {"exec": {"command": ["/bin/sh", "-c", "echo pre > /shared/pre"]}}}}],
        "volumes": [{"name": "shared", "hostPath": {"path": str(shared)}}]}}
    p.kubectl("apply", "-f", "-", input=json.dumps(doc), check=True)
    wait(lambda: ready(pod(p, "hooks")), 60, "hooks Ready")
    assert (shared / "post").read_text().strip() == "1000"
    assert "started as 1000" in p.kubectl("logs", "hooks").stdout
    assert p.kubectl("exec", "hooks", "--", "touch", "/x").returncode != 0  # read-only root
    cid = pod(p, "hooks")["status"]["containerStatuses"][0]["containerID"].removeprefix("podman://")
    memory = subprocess.run(["podman", "inspect", "--format", "{{.HostConfig.Memory}}", cid],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert memory == str(64 * 1024 * 1024) or "LimitsNotEnforced" in events(p, "hooks")
    follow = subprocess.Popen([kubectl_binary("1.33"), f"--cache-dir={p.cache_dir / 'follow'}", "logs", "-f",
                               "hooks"], stdout=subprocess.PIPE, text=True,
                              env={"KUBECONFIG": str(p.kubeconfig), "PATH": "/usr/bin:/bin"})
    try:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        assert first.startswith(("started", "tick")), first
        assert "tick" in follow.stdout.readline()  # a line written after the follow began
        p.kubectl("delete", "pod", "hooks", "--wait=false", check=True)
        rest = follow.communicate(timeout=30)[0]
    finally:
        follow.kill()
    assert "bye" in rest  # SIGTERM reached the shell, after the preStop hook
    assert (shared / "pre").read_text().strip() == "pre"
    wait(lambda: not pod(p, "hooks"), 30, "hooks deleted")


def _silent_server() -> tuple[socket.socket, int]:
    """A loopback TCP port that accepts and never answers: a registry whose pull hangs."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return srv, srv.getsockname()[1]


def _bad_pod(name: str, image: str, policy: str | None = None, command: str = "") -> str:
    extra = f"\n    imagePullPolicy: {policy}" if policy else ""
    if command:
        extra += f'\n    command: ["/bin/sh", "-c", "{command}"]'
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: "{image}"{extra}
"""


def test_image_errors_and_a_container_that_exits_at_once(cluster: Podns, image: str) -> None:
    """given images that cannot be had: a registry that refuses (ErrImagePull, then
    ImagePullBackOff, podman's message in the status and an Event), a reference that does not
    parse (InvalidImageName), Never for a missing image (ErrImageNeverPull), a registry that
    never answers (ErrImagePull after --image-pull-timeout); and a container that exits with 3 at
    once (Failed, exit code 3). No pod is stuck in ContainerCreating; the agent serves them all."""
    p = cluster
    srv, port = _silent_server()
    try:
        docs = [_bad_pod("refused", "localhost:1/podns-test/nothing:1"),
                _bad_pod("badref", "Not//A:Ref"),
                _bad_pod("never", f"{PREFIX}-missing:1", policy="Never"),
                _bad_pod("hangs", f"127.0.0.1:{port}/podns-test/slow:1"),
                _bad_pod("exits", image, command="echo bye; exit 3")]
        p.kubectl("apply", "-f", "-", input="\n---\n".join(docs), check=True)
        pulling = ("ErrImagePull", "ImagePullBackOff")
        wait(lambda: waiting_reason(p, "refused") in pulling, 30, "refused: pull error")
        st = pod(p, "refused")["status"]["containerStatuses"][0]["state"]["waiting"]
        assert "localhost:1" in st["message"] or "Back-off pulling image" in st["message"]
        assert "Failed to pull image" in events(p, "refused")
        wait(lambda: waiting_reason(p, "refused") == "ImagePullBackOff", 30, "refused: ImagePullBackOff")
        assert "Back-off pulling image" in events(p, "refused")
        wait(lambda: waiting_reason(p, "badref") == "InvalidImageName", 30, "badref: InvalidImageName")
        assert "invalid reference format" in pod(p, "badref")["status"]["containerStatuses"][0]["state"][
            "waiting"]["message"]
        wait(lambda: waiting_reason(p, "never") == "ErrImageNeverPull", 30, "never: ErrImageNeverPull")
        wait(lambda: waiting_reason(p, "hangs") in pulling, 40, "hangs: timed out")
        assert "timed out" in events(p, "hangs")
        wait(lambda: pod(p, "exits").get("status", {}).get("phase") == "Failed", 30, "exits: Failed")
        term = pod(p, "exits")["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        assert "bye" in p.kubectl("logs", "exits").stdout
    finally:
        srv.close()
        p.kubectl("delete", "pod", "refused", "badref", "never", "hangs", "exits", "--wait=false")
    wait(lambda: not any(pod(p, n) for n in ("refused", "badref", "never", "hangs", "exits")), 30, "deleted")
