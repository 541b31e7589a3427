"""Streams into pods in namespace mode (`podns up --pod-network netns`, root): `kubectl exec`
runs in the pod's network and mount namespaces, so the pod's resolv.conf applies and names
resolve through the cluster DNS (the README's "debugging from inside" story, exactly as the
Kubernetes docs write it), and port-forward reaches a server bound to the pod's own loopback;
an exec that cannot enter the pod's sandbox fails with the reason (it used to exit 0, silent)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from podns.node import netns
from tests._support import kubectl_binary, wait_until
from tests.e2e.conftest import REPO, Podns
from tests.e2e.test_node_netns import ready_ips
from tests.e2e.test_pod_streams import ECHO, _in_pty, _talk

NETNS_SKIP = netns.unavailable_reason()
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(150),
              pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or ""),
              pytest.mark.podns_args("--pod-network", "netns",
                                     "--container-runtime", "process",  # the example's host programs
                                     "--service-cidr", f"127.{150 + os.getpid() % 100}.0.0/16")]


def test_exec_and_port_forward_in_the_pods_namespaces(podns_module: Podns) -> None:
    """given the db-headless example in netns mode: exec sees the pod's host name and
    resolv.conf, `nslookup db-service` inside lists every ready pod IP, `kubectl run -it --rm
    dns-test --image=busybox --restart=Never -- nslookup db-0.db-service` prints db-0's IP and
    deletes its pod; port-forward reaches a server listening on 127.0.0.1 inside a pod."""
    p = podns_module
    p.kubectl("apply", "-f", str(REPO / "examples" / "db-headless.yaml"), check=True)
    echo = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lo-echo"}, "spec": {"containers": [{
        "name": "main", "image": "python", "command": [sys.executable, "-c", ECHO],
        "env": [{"name": "POD_IP", "value": "127.0.0.1"}, {"name": "HOSTNAME", "value": "lo-echo"}]}]}}
    p.kubectl("apply", "-f", "-", input=json.dumps(echo), check=True)
    dbs = ["db-0", "db-1", "db-2"]
    ips = wait_until(lambda: ready_ips(p, dbs), 60, "db pods Ready")

    named = p.kubectl("exec", "db-0", "--", "hostname")
    assert named.stdout == "db-0\n", (named.returncode, named.stderr)
    resolv = p.kubectl("exec", "db-0", "--", "cat", "/etc/resolv.conf").stdout
    assert "search default.svc.cluster.local svc.cluster.local cluster.local" in resolv, resolv
    looked = p.kubectl("exec", "db-0", "--", "nslookup", "db-service")
    assert looked.returncode == 0, looked.stderr
    found = set(re.findall(r"10\.244\.\d+\.\d+", looked.stdout))
    assert found >= set(ips.values()), looked.stdout

    env = dict(os.environ, KUBECONFIG=str(p.kubeconfig))
    argv = [kubectl_binary("1.33"), f"--cache-dir={p.cache_dir / 'run'}", "run", "-it", "--rm", "dns-test",
            "--image=busybox", "--restart=Never", "--", "nslookup", "db-0.db-service"]
    out, code = _in_pty(argv, env, p.workdir, [('pod "dns-test" deleted', b"", None)], timeout=60)
    assert code == 0 and ips["db-0"] in out and "db-0.db-service.default.svc.cluster.local" in out, out

    wait_until(lambda: (ready_ips(p, ["lo-echo"]) or {}).get("lo-echo"), 30, "lo-echo Ready")

    def serving() -> bool:
        return p.kubectl("exec", "lo-echo", "--", "python3", "-c",
                         "import socket; socket.create_connection(('127.0.0.1', 7000))").returncode == 0

    wait_until(serving, 30, "lo-echo listening on its loopback")
    with _port_forward(p, "pod/lo-echo", 7000) as local, \
            socket.create_connection(("127.0.0.1", local), timeout=10) as conn:
        assert _talk(conn, "inside") == "lo-echo: inside"


#: a mount point on the host that only this module's pod uses (the agent creates it)
LOST_MOUNT = f"/podns-test-lost{os.getpid()}"


@pytest.mark.parametrize("version", ["1.27", "1.33"])  # SPDY, WebSocket
def test_exec_that_cannot_enter_the_pods_sandbox_says_why(podns_module: Podns, version: str) -> None:
    """given a running pod whose volume's mount point was removed on the host (as another
    cluster's agent did with /var/run/secrets/kubernetes.io/serviceaccount once its own last
    pod using it was gone), `kubectl exec` fails with exit code 126 and the failed step. It
    exited 0 with no output before: the failure escaped the session, and a stream that closes
    without a Status reads as success to kubectl."""
    p = podns_module
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lost-mount"}, "spec": {
        "automountServiceAccountToken": False, "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "main", "image": "none", "command": ["sleep", "100000"],
                        "volumeMounts": [{"name": "scratch", "mountPath": LOST_MOUNT}]}]}}
    p.kubectl("apply", "-f", "-", input=json.dumps(pod), check=True)
    wait_until(lambda: (ready_ips(p, ["lost-mount"]) or {}).get("lost-mount"), 60, "lost-mount Ready")
    if os.path.isdir(LOST_MOUNT):
        os.rmdir(LOST_MOUNT)  # empty on the host: the pod's bind mount lives in its own namespace
    r = p.kubectl("exec", "lost-mount", "--", "hostname", version=version)
    assert r.returncode == 126 and r.stdout == "", (r.returncode, r.stdout, r.stderr)
    assert "failed to enter the pod's sandbox: [Errno 2] mounting " in r.stderr and LOST_MOUNT in r.stderr, \
        r.stderr


class _port_forward:
    """`kubectl port-forward <target> :<port>` for a `with` block: the local port."""

    def __init__(self, p: Podns, target: str, port: int) -> None:
        self.proc = subprocess.Popen(
            [kubectl_binary("1.33"), f"--cache-dir={p.cache_dir / 'pf'}", "port-forward", "--address",
             "127.0.0.1", target, f":{port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, KUBECONFIG=str(p.kubeconfig)))

    def __enter__(self) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        assert m, line
        return int(m.group(1))

    def __exit__(self, *exc: object) -> None:
        self.proc.kill()
        self.proc.wait()
