"""The real workloads of examples/postgres/ and examples/etcd/, run as README's story runs them.

podns starts as `sudo ./run.sh` starts it (`--pod-network auto`: netns as root; `--container-runtime
auto`: podman where it works), and the examples go in with `kubectl apply -f examples/postgres/` and
`kubectl apply -f examples/etcd/` alone: their RuntimeClass `host-process` (handler `process`) runs
the host's PostgreSQL and etcd however the node's default runtime is chosen, and the example Secret
(01-secret.yaml) holds the password. Offline: nothing is pulled.

PostgreSQL (Debian's binaries, uid 999 with fsGroup): db-0 initialises a primary, db-1 and db-2
clone it by its stable name `db-0.db-service` and stream from it; `kubectl exec db-1 -- psql -c
'select pg_is_in_recovery()'` says t; a row written on db-0 is on both replicas within a second;
examples/postgres/app.py (password read from the Secret through the kubeconfig) keeps writing and
reading through podns.lb while a replica is deleted (it returns with its claim, its old rows, and
catches up) and while the primary restarts, and loses no acknowledged write. etcd: three members
that bootstrap from `--initial-cluster etcd-N=http://etcd-N.etcd:2380` are healthy (`kubectl exec
etcd-0 -- etcdctl member list`), and a deleted member rejoins under the same name. A RuntimeClass
whose handler the node lacks leaves its pod Pending with the kubelet's FailedCreatePodSandBox.

The host reaches pod IPs through the node's bridge; pod names are resolved with the test's podns
DNS. One `podns up` for the module (root only: skipped with the reason otherwise); its service
CIDR is unique and its DNS forwards nowhere (other podns processes share this machine).
"""

from __future__ import annotations

import base64
import functools
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import pytest

from podns.node import netns
from tests._support import wait_until
from tests.e2e.conftest import REPO, Podns

psycopg = pytest.importorskip("psycopg", reason="psycopg not installed (pip install -e '.[test]')")

NETNS_SKIP = netns.unavailable_reason()
PG_MISSING = (None if glob.glob("/usr/lib/postgresql/*/bin/postgres") or shutil.which("postgres")
              else "PostgreSQL not installed (Debian package postgresql: scripts/setup.sh --test as root)")
ETCD_MISSING = (None if shutil.which("etcd") and shutil.which("etcdctl")
                else "etcd/etcdctl not installed (Debian packages etcd-server, etcd-client)")
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(240),
              pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or ""),
              # as ./run.sh: pod network and container runtime auto (netns; podman where it works)
              pytest.mark.podns_args("--pod-network", "auto",
                                     "--service-cidr", f"127.{150 + os.getpid() % 100}.0.0/16")]

wait = functools.partial(wait_until, step=0.2)
ZONE = "cluster.local"


def pods(p: Podns, selector: str) -> dict[str, dict[str, Any]]:
    r = p.kubectl("get", "pods", "-l", selector, "-o", "json")
    return {x["metadata"]["name"]: x for x in json.loads(r.stdout)["items"]} if r.returncode == 0 else {}


def _ready(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def ready_uids(p: Podns, selector: str, names: list[str]) -> dict[str, str] | None:
    """name -> uid once every pod in `names` is Ready (None before)."""
    found = pods(p, selector)
    if not all(n in found and _ready(found[n]) for n in names):
        return None
    return {n: found[n]["metadata"]["uid"] for n in names}


def answer(p: Podns, name: str) -> list[str]:
    """The A records of `name` (relative to the default namespace) from the test's podns DNS."""
    q = dns.message.make_query(f"{name}.default.svc.{ZONE}", "A")
    r = dns.query.udp(q, p.dns_addr[0], port=p.dns_addr[1], timeout=2)
    return [str(rr) for rrset in r.answer for rr in rrset]


def resolve(p: Podns, name: str) -> str:
    """The address of `name` (a pod's stable name) from the test's podns DNS."""
    addrs = answer(p, name)
    assert addrs, f"{name}: no A record"
    return addrs[0]


def replaced(p: Podns, selector: str, name: str, old_uid: str, service: str) -> bool:
    """True once `name` is back, Ready, as a new pod (another uid), and its stable name
    `<name>.<service>` answers with the new pod's address (DNS follows the API in milliseconds:
    this closes that window, so callers may resolve the name at once)."""
    found = pods(p, selector).get(name)
    if found is None or not _ready(found) or found["metadata"]["uid"] == old_uid:
        return False
    return answer(p, f"{name}.{service}") == [found["status"]["podIP"]]


# -- PostgreSQL ------------------------------------------------------------------------------------


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, f"kubectl failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_node_defaults_to_podman(podns_module: Podns) -> None:
    """given podns started as ./run.sh starts it, as root with a working podman, then the node's
    default runtime is podman (what the examples' RuntimeClass has to get past offline)."""
    if not shutil.which("podman"):
        pytest.skip("podman is not installed: the default runtime is the process one")
    node = json.loads(ok(podns_module.kubectl("get", "nodes", "-o", "json")))["items"][0]
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("podman://"), node["status"]


@pytest.fixture(scope="module")
def pg(podns_module: Podns) -> Iterator[tuple[Podns, str]]:
    """`kubectl apply -f examples/postgres/` and `kubectl rollout status sts/db`; yields (podns,
    the password of the Secret the directory created) once db-0..2 are Ready."""
    if PG_MISSING:
        pytest.skip(PG_MISSING)
    p = podns_module
    out = ok(p.kubectl("apply", "-f", str(REPO / "examples" / "postgres") + "/"))
    assert "runtimeclass.node.k8s.io/host-process created" in out and "secret/db-secret created" in out
    try:
        ok(p.kubectl("rollout", "status", "sts/db", "--timeout=150s", timeout=170))
        wait(lambda: ready_uids(p, "app=db", ["db-0", "db-1", "db-2"]), 10, "db-0..2 Ready")
        wait(lambda: all(answer(p, f"db-{i}.db-service") for i in range(3)), 10, "db-0..2 in DNS")
    except AssertionError:
        print(p.kubectl("get", "pods,events", "-o", "wide").stdout)
        for name in ("db-0", "db-1"):
            print(p.kubectl("logs", name, "--all-containers").stdout[-3000:])
        raise
    encoded = ok(p.kubectl("get", "secret", "db-secret", "-o", "jsonpath={.data.password}"))
    yield p, base64.b64decode(encoded).decode()


def sql(p: Podns, password: str, pod: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run `query` on `pod` (its address from podns DNS) and return the rows."""
    with psycopg.connect(host=resolve(p, f"{pod}.db-service"), user="postgres", dbname="postgres",
                         password=password, connect_timeout=3, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def test_postgres_replicas_stream_from_db0(pg: tuple[Podns, str]) -> None:
    """given examples/postgres/: db-0 is a primary, db-1 and db-2 standbys, and a row written on db-0
    is readable on db-1 and db-2 within a second."""
    p, pw = pg
    assert sql(p, pw, "db-0", "SELECT pg_is_in_recovery()") == [(False,)]
    for replica in ("db-1", "db-2"):
        assert sql(p, pw, replica, "SELECT pg_is_in_recovery()") == [(True,)]
        rows = sql(p, pw, replica, "SELECT status, sender_host FROM pg_stat_wal_receiver")
        assert rows == [("streaming", "db-0.db-service")], rows
    sql(p, pw, "db-0", "CREATE TABLE IF NOT EXISTS probe (v text)")
    for replica in ("db-1", "db-2"):  # the table first, untimed: the timed part is one row
        wait(lambda r=replica: sql(p, pw, r, "SELECT count(*) FROM pg_tables WHERE tablename = 'probe'")
             == [(1,)], 10, f"the table on {replica}")
    marker = secrets.token_hex(8)
    sql(p, pw, "db-0", "INSERT INTO probe VALUES (%s)", marker)
    written = time.monotonic()
    for replica in ("db-1", "db-2"):
        wait(lambda r=replica: sql(p, pw, r, "SELECT v FROM probe WHERE v = %s", marker), 1.0,
             f"the row on {replica}")
    assert time.monotonic() - written < 1.0
    assert sql(p, pw, "db-1", "SHOW data_directory") == [("/var/lib/postgresql/data/pgdata",)]
    # README's command, literally: psql in db-1's default container, as the container's uid 999
    # (PGUSER=postgres) over its unix socket (no password)
    out = ok(p.kubectl("exec", "db-1", "--", "psql", "-c", "select pg_is_in_recovery()"))
    assert out.split()[:3] == ["pg_is_in_recovery", "-------------------", "t"], out
    r = p.kubectl("exec", "db-1", "-c", "postgres", "--", "psql", "-tAc", "select inet_server_addr() is null")
    assert r.returncode == 0 and r.stdout.split() == ["t"], (r.stdout, r.stderr)  # null: the unix socket
    r = p.kubectl("exec", "db-1", "-c", "postgres", "--", "id", "-u")
    assert r.stdout.strip() == "999", (r.stdout, r.stderr)
    # the process handler ran it although podman is the node's default: no image, a local process
    pod = json.loads(ok(p.kubectl("get", "pod", "db-1", "-o", "json")))
    assert pod["spec"]["runtimeClassName"] == "host-process"
    ids = [c.get("containerID", "") for c in pod["status"]["containerStatuses"]]
    assert ids and not any(i.startswith("podman://") for i in ids), ids
    # the API keeps the container's stop signal, which the agent sends on deletion (fast shutdown)
    r = p.kubectl("get", "pod", "db-0", "-o", "jsonpath={.spec.containers[0].lifecycle.stopSignal}")
    assert r.stdout == "SIGINT", (r.stdout, r.stderr)


def test_postgres_app_keeps_every_acknowledged_write(pg: tuple[Podns, str]) -> None:
    """given examples/postgres/app.py writing and reading through podns.lb: db-2 deleted mid-traffic
    comes back (same claim: its old rows are there before it catches up) and serves reads again;
    the primary db-0 restarted (SIGINT fast shutdown) takes writes again; the app reports errors
    during both and loses no acknowledged write."""
    p, pw = pg
    # no PGPASSWORD: the app reads it from the Secret through the kubeconfig, as README runs it
    env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"} | {"KUBECONFIG": str(p.kubeconfig)}
    app = subprocess.Popen(
        [sys.executable, str(REPO / "examples" / "postgres" / "app.py"), "--dns",
         f"{p.dns_addr[0]}:{p.dns_addr[1]}", "--seconds", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        wait(lambda: sql(p, pw, "db-2", "SELECT count(*) FROM pg_tables WHERE tablename = 'app_writes'")
             == [(1,)], 30, "the app's table on db-2")
        wait(lambda: sql(p, pw, "db-2", "SELECT count(*) FROM app_writes")[0][0] > 20, 30, "writes on db-2")
        before = sql(p, pw, "db-2", "SELECT max(id) FROM app_writes")[0][0]
        uids = ready_uids(p, "app=db", ["db-0", "db-2"])
        assert uids is not None
        r = p.kubectl("delete", "pod", "db-2", "--wait=false")
        assert r.returncode == 0, r.stderr
        wait(lambda: replaced(p, "app=db", "db-2", uids["db-2"], "db-service"), 60, "db-2 back and Ready")
        assert sql(p, pw, "db-2", "SELECT count(*) FROM app_writes WHERE id <= %s", before)[0][0] >= before
        primary_max = sql(p, pw, "db-0", "SELECT max(id) FROM app_writes")[0][0]
        wait(lambda: sql(p, pw, "db-2", "SELECT max(id) FROM app_writes")[0][0] >= primary_max, 10,
             "db-2 caught up with the primary")

        r = p.kubectl("delete", "pod", "db-0", "--wait=false")
        assert r.returncode == 0, r.stderr
        wait(lambda: replaced(p, "app=db", "db-0", uids["db-0"], "db-service"), 60, "db-0 back and Ready")
        after = sql(p, pw, "db-0", "SELECT max(id) FROM app_writes")[0][0]
        wait(lambda: sql(p, pw, "db-0", "SELECT max(id) FROM app_writes")[0][0] > after + 10, 20,
             "the app writing to the restarted primary")
        app.send_signal(signal.SIGINT)  # ends the app: it verifies its writes and reports
        out, _ = app.communicate(timeout=90)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    report = json.loads(out[out.index("{"):])
    assert app.returncode == 0, out
    assert report["lost"] == [], report
    assert report["writes_acknowledged"] > 50, report
    assert {"db-1", "db-2"} <= set(report["reads"]), report
    assert any(k.startswith("write") for k in report["errors"]), report  # the primary's restart was seen
    rows = sql(p, pw, "db-0", "SELECT count(*) FROM app_writes")[0][0]
    assert rows >= report["writes_acknowledged"]


# -- etcd --------------------------------------------------------------------------------------------


def etcd_members(ip: str) -> list[dict[str, Any]]:
    """The member list through etcd's v3 JSON gateway (what `etcdctl member list` asks)."""
    req = urllib.request.Request(f"http://{ip}:2379/v3/cluster/member/list", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=3) as r:
        return list(json.loads(r.read())["members"])


def etcd_put_get(ip: str, key: str, value: str | None = None) -> str | None:
    b64 = base64.b64encode(key.encode()).decode()
    if value is not None:
        body = json.dumps({"key": b64, "value": base64.b64encode(value.encode()).decode()}).encode()
        urllib.request.urlopen(urllib.request.Request(f"http://{ip}:2379/v3/kv/put", data=body), timeout=3)
    ranged = urllib.request.Request(f"http://{ip}:2379/v3/kv/range", data=json.dumps({"key": b64}).encode())
    with urllib.request.urlopen(ranged, timeout=3) as r:
        kvs = json.loads(r.read()).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]).decode() if kvs else None


def test_etcd_members_bootstrap_by_name_and_rejoin(podns_module: Podns) -> None:
    """given examples/etcd/: three members bootstrap from their stable names (publishNotReadyAddresses)
    and are healthy; etcd-1 deleted comes back under the same name with its data and rejoins."""
    if ETCD_MISSING:
        pytest.skip(ETCD_MISSING)
    p = podns_module
    ok(p.kubectl("apply", "-f", str(REPO / "examples" / "etcd") + "/"))
    names = ["etcd-0", "etcd-1", "etcd-2"]
    wait(lambda: ready_uids(p, "app=etcd", names), 90, "etcd-0..2 Ready")
    members = etcd_members(resolve(p, "etcd-0.etcd"))
    assert sorted(m["name"] for m in members) == names
    assert sorted(m["peerURLs"][0] for m in members) == [f"http://{n}.etcd:2380" for n in names]
    etcd_put_get(resolve(p, "etcd-0.etcd"), "greeting", "hello")
    r = p.kubectl("exec", "etcd-0", "--", "etcdctl", "member", "list")  # by the stable names, in the pod
    assert r.returncode == 0 and sorted(line.split(", ")[1:3] for line in r.stdout.splitlines()) == [
        ["started", n] for n in names], (r.stdout, r.stderr)

    uids = ready_uids(p, "app=etcd", names)
    assert uids is not None
    r = p.kubectl("delete", "pod", "etcd-1", "--wait=false")
    assert r.returncode == 0, r.stderr
    wait(lambda: replaced(p, "app=etcd", "etcd-1", uids["etcd-1"], "etcd"), 60, "etcd-1 back and Ready")
    ip1 = resolve(p, "etcd-1.etcd")
    after = etcd_members(ip1)
    assert sorted((m["name"], m["ID"]) for m in after) == sorted((m["name"], m["ID"]) for m in members)
    assert etcd_put_get(ip1, "greeting") == "hello"


def test_unknown_runtime_handler_fails_the_sandbox(podns_module: Podns) -> None:
    """given a RuntimeClass whose handler the node does not serve, then its pod stays Pending with
    its containers ContainerCreating, and the node reports what the kubelet reports of containerd:
    a FailedCreatePodSandBox Warning Event 'Failed to create pod sandbox: ... no runtime for
    "runc" is configured'."""
    p = podns_module
    ok(p.kubectl("apply", "-f", "-", input="""
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: needs-runc}
handler: runc
---
apiVersion: v1
kind: Pod
metadata: {name: odd-runtime}
spec:
  runtimeClassName: needs-runc
  containers: [{name: c, image: busybox, command: [sleep, "60"]}]
"""))
    want = ('Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox '
            'runtime: no runtime for "runc" is configured')

    def sandbox_events() -> list[dict[str, Any]]:
        out = ok(p.kubectl("get", "events", "--field-selector", "involvedObject.name=odd-runtime",
                           "-o", "json"))
        return [e for e in json.loads(out)["items"] if e["reason"] == "FailedCreatePodSandBox"]

    events = wait(sandbox_events, 30, "the FailedCreatePodSandBox event")
    assert events[0]["type"] == "Warning" and events[0]["message"] == want, events
    pod = json.loads(ok(p.kubectl("get", "pod", "odd-runtime", "-o", "json")))
    assert pod["status"]["phase"] == "Pending" and not pod["status"].get("podIP"), pod["status"]
    statuses = pod["status"].get("containerStatuses") or []
    waiting = [c["state"].get("waiting", {}).get("reason") for c in statuses]
    assert waiting in ([], ["ContainerCreating"]), pod["status"]
    ok(p.kubectl("delete", "pod", "odd-runtime", "--wait=false"))
