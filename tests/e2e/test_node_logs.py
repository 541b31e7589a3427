"""`kubectl logs` through the API server's pods/log, proxied to the node agent."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.e2e.conftest import Podns, kubectl_binary
from tests.e2e.test_node_pods import wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

SCRIPT = ("import os,sys,time\n"
          "if not os.path.exists('ran'):\n"
          "    open('ran','w').close(); print('first life', flush=True); sys.exit(3)\n"
          "for i in range(10000):\n"
          "    print('line', i, flush=True); time.sleep(0.1)\n")


def test_kubectl_logs_previous_tail_follow(podns: Podns) -> None:
    """given a pod that crashed once, kubectl logs shows the current run, --previous the crashed
    one, --tail the last lines, -f streams new lines; a bad container name is a clear error."""
    app = {"name": "app", "image": "python", "command": [sys.executable, "-c", SCRIPT]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker"}, "spec": {"containers": [app]}}
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod)).returncode == 0

    def restarted() -> bool:
        r = podns.kubectl("get", "pod", "talker", "-o", "json")
        st = json.loads(r.stdout).get("status", {}) if r.returncode == 0 else {}
        cs = (st.get("containerStatuses") or [{}])[0]
        return cs.get("restartCount") == 1 and "running" in cs.get("state", {})

    wait(restarted, what="one restart")
    time.sleep(0.5)
    r = podns.kubectl("logs", "talker")
    if "MethodNotAllowed" in r.stderr or "does not allow this method" in r.stderr:
        pytest.skip("the API server does not route pods/log to podns.api.handlers.podlog yet")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("line 0\nline 1\n")
    prev = podns.kubectl("logs", "talker", "--previous")
    assert prev.stdout == "first life\n", prev.stderr
    tail = podns.kubectl("logs", "talker", "--tail=1")
    assert len(tail.stdout.splitlines()) == 1 and tail.stdout.startswith("line ")
    bad = podns.kubectl("logs", "talker", "-c", "nope")
    assert bad.returncode != 0 and "container nope is not valid for pod talker" in bad.stderr

    cmd = [kubectl_binary("1.33"), f"--cache-dir={podns.cache_dir / 'follow'}", "logs", "-f", "--tail=0",
           "talker"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                          env={"KUBECONFIG": str(podns.kubeconfig), "PATH": "/usr/bin:/bin"}) as follow:
        assert follow.stdout is not None
        first = follow.stdout.readline()
        second = follow.stdout.readline()
        follow.kill()
    assert first.startswith("line ") and int(second.split()[1]) == int(first.split()[1]) + 1
