"""End to end: the workload kinds under real kubectl 1.27 (JSON bodies) and 1.33 (protobuf
bodies) against one `podns up` (loopback pods running Python one-liners):

- Deployments and ReplicaSets: create, expose headless (one A record per replica in podns DNS),
  set image, rollout status/history/undo/restart/pause/resume, scale, describe, explain, delete
  with garbage collection; the headless-service behaviour during a rolling update with
  maxUnavailable 0;
- Jobs and CronJobs: create job, wait for Complete, logs, a failing Job's backoffLimit; create
  cronjob, a scheduled run, create job --from=cronjob, cascade deletion;
- DaemonSets: one pod per node, following a Node added and deleted, set image, rollout status;
- PodDisruptionBudgets: create pdb, its status, eviction refused with 429, drain/cordon/uncordon."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from tests._support import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240),
              pytest.mark.podns_args("--pod-network", "loopback")]

#: the pods' program: an HTTP server on the pod IP (images are recorded, not run, in process mode)
SERVER = ("import os,http.server as h; h.ThreadingHTTPServer((os.environ['PODNS_POD_IP'],8080),"
          "h.SimpleHTTPRequestHandler).serve_forever()")


#: the same server draining as real services do: on SIGTERM it keeps serving 3 s, then exits
DRAINING_SERVER = ("import os,signal,threading,http.server as h\n"
                   "signal.signal(signal.SIGTERM, lambda *a: threading.Timer(3, os._exit, (0,)).start())\n"
                   "h.ThreadingHTTPServer((os.environ['PODNS_POD_IP'],8080),"
                   "h.SimpleHTTPRequestHandler).serve_forever()")


def kjson(api: Any, *args: str, version: str = "1.33") -> Any:
    out = api.kubectl(*args, "-o", "json", version=version)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ok(api: Any, *args: str, version: str = "1.33", input: str | None = None) -> str:
    r = api.kubectl(*args, version=version, input=input, timeout=120)
    assert r.returncode == 0, f"kubectl {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def a_records(api: Any, name: str) -> list[str]:
    q = dns.message.make_query(f"{name}.default.svc.cluster.local", "A")
    r = dns.query.udp(q, api.dns_addr[0], port=api.dns_addr[1], timeout=2)
    return sorted(item.address for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for item in rrset)


def serves(ip: str) -> bool:
    try:
        socket.create_connection((ip, 8080), timeout=1).close()
        return True
    except OSError:
        return False


def sets_of(api: Any, name: str) -> list[dict[str, Any]]:
    return [rs for rs in kjson(api, "get", "rs")["items"]
            if (rs["metadata"].get("ownerReferences") or [{}])[0].get("name") == name]


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_deployment_story_with_kubectl(podns_module: Any, version: str) -> None:
    """Given `kubectl create deployment` of 3 and `expose --cluster-ip=None`, then rollout status
    completes and DNS answers 3 A records (`expose pod` selects by the pod's labels); `set image`
    rolls to a second ReplicaSet (revision 2); `rollout undo` reuses the first as revision 3;
    `restart` rolls again; while paused a new image creates no ReplicaSet, `resume` rolls it;
    `scale` to 5 gives 5 A records; the table has Kubernetes' columns; describe shows
    ScalingReplicaSet events; deleting the Deployment removes its ReplicaSets and pods."""
    api = podns_module
    name = f"web{version.replace('.', '')}"
    ok(api, "create", "deployment", name, "--image=nginx", "--replicas=3", "--port=8080",
       "--", sys.executable, "-c", SERVER, version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    ok(api, "expose", "deployment", name, "--port=80", "--target-port=8080", "--cluster-ip=None",
       version=version)
    wait_until(lambda: len(a_records(api, name)) == 3, 30, "3 A records")
    one = kjson(api, "get", "pods", "-l", f"app={name}")["items"][0]
    ok(api, "expose", "pod", one["metadata"]["name"], f"--name={name}-one", "--port=8080",
       "--cluster-ip=None", version=version)
    assert kjson(api, "get", "service", f"{name}-one")["spec"]["selector"] == one["metadata"]["labels"]
    # the pod's labels are its ReplicaSet's too: the Service selects every replica (as Kubernetes)
    wait_until(lambda: one["status"]["podIP"] in a_records(api, f"{name}-one"), 30, "the pod's A record")
    ok(api, "delete", "service", f"{name}-one", version=version)
    first = sets_of(api, name)
    assert len(first) == 1 and first[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

    ok(api, "set", "image", f"deployment/{name}", "nginx=nginx:1.27", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    history = ok(api, "rollout", "history", f"deployment/{name}", version=version)
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    ok(api, "rollout", "undo", f"deployment/{name}", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    d = kjson(api, "get", "deployment", name)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    revs = {rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
            for rs in sets_of(api, name)}
    assert revs[first[0]["metadata"]["name"]] == "3" and len(revs) == 2

    ok(api, "rollout", "restart", f"deployment/{name}", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    assert len(sets_of(api, name)) == 3

    ok(api, "rollout", "pause", f"deployment/{name}", version=version)
    ok(api, "set", "image", f"deployment/{name}", "nginx=nginx:2", version=version)
    wait_until(lambda: any(c["reason"] == "DeploymentPaused"
                           for c in kjson(api, "get", "deployment", name)["status"].get("conditions", [])),
               30, "DeploymentPaused")
    assert len(sets_of(api, name)) == 3
    ok(api, "rollout", "resume", f"deployment/{name}", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    assert len(sets_of(api, name)) == 4

    ok(api, "scale", "deployment", name, "--replicas=5", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=90s", version=version)
    wait_until(lambda: len(a_records(api, name)) == 5, 30, "5 A records")
    table = ok(api, "get", "deployment", name, "-o", "wide", version=version).splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES",
                                "SELECTOR"]
    assert table[1].split()[:4] == [name, "5/5", "5", "5"] and table[1].split()[-1] == f"app={name}"
    rs_table = ok(api, "get", "rs", "-o", "wide", version=version).splitlines()[0].split()
    assert rs_table == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert "ScalingReplicaSet" in ok(api, "describe", "deployment", name, version=version)
    explained = ok(api, "explain", "deployment.spec.strategy", version=version)
    assert "The deployment strategy to use to replace existing pods with new ones." in explained
    assert "rollingUpdate" in explained and "<RollingUpdateDeployment>" in explained

    ok(api, "delete", "deployment", name, version=version)
    wait_until(lambda: not sets_of(api, name) and not [
        p for p in kjson(api, "get", "pods")["items"] if p["metadata"]["name"].startswith(name + "-")],
        60, "ReplicaSets and pods garbage-collected")
    ok(api, "delete", "service", name, version=version)


ROLLING = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: roll}
spec:
  replicas: 3
  selector: {matchLabels: {app: roll}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: roll}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: web
        image: web:1
        command: [PYTHON, -c, SERVER]
        ports: [{containerPort: 8080}]
        readinessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: roll}
spec:
  clusterIP: None
  selector: {app: roll}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_rollout_behind_headless_service_keeps_ready_endpoints(podns_module: Any) -> None:
    """Given 3 replicas with maxUnavailable 0 behind a headless Service, when the image changes,
    then the Service's ready endpoints (EndpointSlices) and DNS A records never drop below 3, and
    every replaced pod appears in its slice as ready=false, terminating=true while its process
    still serves (the grace period has not run out)."""
    api = podns_module
    manifest = ROLLING.replace("PYTHON", json.dumps(sys.executable)).replace(
        "SERVER", json.dumps(DRAINING_SERVER))
    ok(api, "apply", "-f", "-", input=manifest)
    ok(api, "rollout", "status", "deployment/roll", "--timeout=90s")
    wait_until(lambda: len(a_records(api, "roll")) == 3, 30, "3 A records")
    old_ips = set(a_records(api, "roll"))

    stop = threading.Event()
    low = {"dns": 99, "slices": 99}
    terminating_seen: dict[str, bool] = {}  # address -> it accepted a connection at that moment
    errors: list[str] = []

    def watch_dns() -> None:
        while not stop.is_set():
            try:
                low["dns"] = min(low["dns"], len(a_records(api, "roll")))
            except Exception as exc:  # a timeout is a failure of the property under test
                errors.append(repr(exc))
            time.sleep(0.02)

    def watch_slices() -> None:
        while not stop.is_set():
            r = api.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=roll", "-o", "json")
            if r.returncode == 0:
                eps = [e for s in json.loads(r.stdout)["items"] for e in s.get("endpoints") or []]
                low["slices"] = min(low["slices"], sum(1 for e in eps if e["conditions"].get("ready")))
                for e in eps:
                    c = e["conditions"]
                    ip = e["addresses"][0]
                    if c.get("terminating") and not c.get("ready") and ip not in terminating_seen:
                        terminating_seen[ip] = serves(ip)

    threads = [threading.Thread(target=watch_dns), threading.Thread(target=watch_slices)]
    for t in threads:
        t.start()
    try:
        ok(api, "set", "image", "deployment/roll", "web=web:2")
        ok(api, "rollout", "status", "deployment/roll", "--timeout=120s")
        wait_until(lambda: not set(a_records(api, "roll")) & old_ips, 30, "old pods out of DNS")
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors
    assert low["dns"] >= 3 and low["slices"] >= 3, low
    assert set(terminating_seen) & old_ips, f"no old pod seen terminating: {terminating_seen}"
    assert all(terminating_seen.values()), terminating_seen
    ok(api, "delete", "-f", "-", input=manifest)


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_job_and_cronjob_with_kubectl(podns_module: Any, version: str) -> None:
    """Given `kubectl create job once -- <prints done>`, then `kubectl wait --for=condition=complete`
    succeeds, the logs say done, the table says Complete 1/1; a Job whose pod fails with
    backoffLimit 0 ends Failed (BackoffLimitExceeded) with `failed: 1`; `kubectl create cronjob`
    stores the schedule (table: SCHEDULE, SUSPEND False); an `@every 2s` CronJob starts a Job by
    itself which completes and is recorded as lastScheduleTime/lastSuccessfulTime; `create job
    --from=cronjob` makes an owned Job; deleting the CronJob removes its Jobs."""
    api = podns_module
    v = version.replace(".", "")
    once = f"once{v}"
    ok(api, "create", "job", once, "--image=busybox", "--", sys.executable, "-c", "print('done')",
       version=version)
    ok(api, "wait", "--for=condition=complete", f"job/{once}", "--timeout=60s", version=version)
    assert ok(api, "logs", f"job/{once}", version=version).strip() == "done"
    row = ok(api, "get", "job", once, version=version).splitlines()
    assert row[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert row[1].split()[:3] == [once, "Complete", "1/1"]
    job = kjson(api, "get", "job", once)
    assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]
    uid_label = job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"]
    assert uid_label == job["metadata"]["uid"]

    failing = f"fail{v}"
    manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": failing},
                "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": "x", "command": [sys.executable, "-c", "raise SystemExit(3)"]}]}}}}
    ok(api, "apply", "-f", "-", input=json.dumps(manifest), version=version)
    ok(api, "wait", "--for=condition=failed", f"job/{failing}", "--timeout=60s", version=version)
    job = kjson(api, "get", "job", failing)
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded" and job["status"]["failed"] == 1

    tick = f"tick{v}"
    ok(api, "create", "cronjob", tick, "--image=busybox", "--schedule=*/1 * * * *", "--", "date",
       version=version)
    row = ok(api, "get", "cronjob", tick, version=version).splitlines()
    assert row[0].split()[:6] == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST"]
    assert row[1].split()[:6] == [tick, "*/1", "*", "*", "*", "*"]
    fast = f"fast{v}"
    ok(api, "create", "cronjob", fast, "--image=busybox", "--schedule=@every 2s", "--", sys.executable,
       "-c", "print('tick')", version=version)
    wait_until(lambda: kjson(api, "get", "cronjob", fast)["status"].get("lastSuccessfulTime"), 60,
               "a scheduled Job completed")
    owned = [j for j in kjson(api, "get", "jobs")["items"]
             if (j["metadata"].get("ownerReferences") or [{}])[0].get("name") == fast]
    assert owned and owned[0]["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    ok(api, "create", "job", f"manual{v}", f"--from=cronjob/{tick}", version=version)
    manual = kjson(api, "get", "job", f"manual{v}")
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    ok(api, "wait", "--for=condition=complete", f"job/manual{v}", "--timeout=60s", version=version)
    ok(api, "delete", "cronjob", fast, tick, version=version)
    wait_until(lambda: not [j for j in kjson(api, "get", "jobs")["items"]
                            if j["metadata"]["name"].startswith((fast, f"manual{v}"))], 60,
               "the CronJobs' Jobs garbage-collected")
    ok(api, "delete", "job", once, failing, version=version)


DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: NAME}
spec:
  selector: {matchLabels: {app: NAME}}
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - name: agent
        image: agent:1
        command: [PYTHON, -c, "import time; time.sleep(3600)"]
"""


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_daemonset_follows_nodes_with_kubectl(podns_module: Any, version: str) -> None:
    """Given `kubectl apply` of a DaemonSet, then `rollout status` completes with one pod on the
    cluster's node; a second Node object gets its own pod (desired 2) and loses it when the Node
    is deleted; `set image` rolls the pod; the table has Kubernetes' columns; deleting the
    DaemonSet removes its pods."""
    api = podns_module
    name = f"agent{version.replace('.', '')}"
    manifest = DAEMONSET.replace("NAME", name).replace("PYTHON", json.dumps(sys.executable))
    ok(api, "apply", "-f", "-", input=manifest, version=version)
    ok(api, "rollout", "status", f"daemonset/{name}", "--timeout=60s", version=version)

    def pods() -> list[dict[str, Any]]:
        return [p for p in kjson(api, "get", "pods")["items"]
                if p["metadata"]["name"].startswith(name + "-")
                and not p["metadata"].get("deletionTimestamp")]

    assert len(pods()) == 1
    extra = f"extra-node-{name}"
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": extra, "labels": {"kubernetes.io/hostname": extra}}}
    ok(api, "apply", "-f", "-", version=version, input=json.dumps(node))
    wait_until(lambda: [p["spec"]["nodeName"] for p in pods()].count(extra) == 1, 30,
               "a pod on the new node")
    assert kjson(api, "get", "daemonset", name)["status"]["desiredNumberScheduled"] == 2
    ok(api, "delete", "node", extra, version=version)
    wait_until(lambda: extra not in [p["spec"]["nodeName"] for p in pods()] and len(pods()) == 1, 30,
               "the new node's pod gone")
    old = pods()[0]["metadata"]["name"]
    ok(api, "set", "image", f"daemonset/{name}", "agent=agent:2", version=version)
    ok(api, "rollout", "status", f"daemonset/{name}", "--timeout=60s", version=version)
    wait_until(lambda: [p["metadata"]["name"] for p in pods()] != [old] and len(pods()) == 1, 30,
               "pod replaced")
    assert pods()[0]["spec"]["containers"][0]["image"] == "agent:2"
    table = ok(api, "get", "daemonset", name, version=version).splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE",
                                "SELECTOR", "AGE"]
    assert table[1].split()[:6] == [name, "1", "1", "1", "1", "1"]
    ok(api, "delete", "daemonset", name, version=version)
    wait_until(lambda: not pods(), 60, "daemon pods garbage-collected")


@pytest.mark.parametrize("version", ["1.27", "1.33"])
def test_pdb_eviction_and_drain_with_kubectl(podns_module: Any, version: str) -> None:
    """Given a Deployment of 2 and `kubectl create pdb --min-available=2`, then the budget's status
    says 0 disruptions allowed; `kubectl drain` (restricted to these pods) cordons the node and
    cannot evict (429, retried until its timeout); with minAvailable 1 it evicts exactly one pod
    and then waits on the budget again; `kubectl uncordon` makes the node schedulable and the
    replacement pod runs there."""
    api = podns_module
    name = f"pdb{version.replace('.', '')}"
    ok(api, "create", "deployment", name, "--image=nginx", "--replicas=2", "--", sys.executable, "-c",
       "import time; time.sleep(3600)", version=version)
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=60s", version=version)
    ok(api, "create", "pdb", name, f"--selector=app={name}", "--min-available=2", version=version)
    wait_until(lambda: kjson(api, "get", "pdb", name).get("status", {}).get("currentHealthy") == 2, 30,
               "budget status")
    pdb = kjson(api, "get", "pdb", name)["status"]
    assert (pdb["disruptionsAllowed"], pdb["desiredHealthy"], pdb["expectedPods"]) == (0, 2, 2)
    row = ok(api, "get", "pdb", name, version=version).splitlines()
    assert row[0].split() == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS",
                              "AGE"]
    assert row[1].split()[:4] == [name, "2", "N/A", "0"]
    node = kjson(api, "get", "pods", "-l", f"app={name}")["items"][0]["spec"]["nodeName"]
    drain = api.kubectl("drain", node, f"--pod-selector=app={name}", "--timeout=8s", version=version,
                        timeout=60)
    assert drain.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in drain.stdout + drain.stderr
    assert kjson(api, "get", "node", node)["spec"].get("unschedulable") is True
    before = {p["metadata"]["name"] for p in kjson(api, "get", "pods", "-l", f"app={name}")["items"]}
    ok(api, "patch", "pdb", name, "--type=merge", "-p", '{"spec":{"minAvailable":1}}', version=version)
    wait_until(lambda: kjson(api, "get", "pdb", name)["status"].get("disruptionsAllowed") == 1, 30,
               "one disruption allowed")
    drain = api.kubectl("drain", node, f"--pod-selector=app={name}", "--timeout=8s", version=version,
                        timeout=60)
    assert drain.returncode != 0 and "evicted" in drain.stdout, drain.stdout + drain.stderr
    gone = before - {p["metadata"]["name"] for p in kjson(api, "get", "pods", "-l", f"app={name}")["items"]
                     if not p["metadata"].get("deletionTimestamp")}
    assert len(gone) == 1
    ok(api, "uncordon", node, version=version)
    assert not kjson(api, "get", "node", node)["spec"].get("unschedulable")
    ok(api, "rollout", "status", f"deployment/{name}", "--timeout=60s", version=version)
    ok(api, "delete", "pdb", name, version=version)
    ok(api, "delete", "deployment", name, version=version)
