"""`podns up --pod-network netns` end to end: the reference scenario with a network namespace per
pod (real kubectl, real `ip netns exec`, getent and nslookup inside the pods), a volume at its
mountPath, a crashed agent's leftovers cleaned at the next start, nothing left after stopping."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podns.node import netns
from tests._support import wait_until
from tests.e2e.conftest import REPO, Podns

NETNS_SKIP = netns.unavailable_reason()
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(120),
              pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")]


#: this module's polling defaults for tests._support.wait_until
wait = functools.partial(wait_until, step=0.1)


def pods(p: Podns) -> dict[str, dict[str, Any]]:
    r = p.kubectl("get", "pods", "-o", "json")
    return {x["metadata"]["name"]: x for x in json.loads(r.stdout)["items"]} if r.returncode == 0 else {}


def started(obj: dict[str, Any]) -> str:
    st = (obj.get("status") or {}).get("containerStatuses") or [{}]
    return str(st[0].get("containerID", "")) if "running" in (st[0].get("state") or {}) else ""


def ready_ips(p: Podns, names: list[str], after: dict[str, str] | None = None) -> dict[str, str] | None:
    """name -> pod IP once every pod in `names` is Ready (with a running container other than
    `after[name]`, i.e. started again)."""
    found = pods(p)
    out = {}
    for name in names:
        st = (found.get(name) or {}).get("status") or {}
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
            return None
        if after is not None and started(found[name]) in ("", after.get(name)):
            return None
        out[name] = st["podIP"]
    return out


def in_pod(ns: str, *cmd: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"{cmd}: {out.stdout} {out.stderr}"
    return out.stdout


def leftovers(names: set[str], bridge: str) -> list[str]:
    """Which of our namespaces, links, /etc/netns dirs are still there."""
    links = {str(link.get("ifname")) for link in netns._json("link")}
    spaces = set(os.listdir(netns.NETNS_RUN)) if netns.NETNS_RUN.is_dir() else set()
    left = [n for n in names if n in spaces or (netns.ETC_NETNS / n).exists()]
    left += [f"veth {v}" for v in links if v in {n.replace(netns.PREFIX, netns.VETH_PREFIX) for n in names}]
    return left + ([f"bridge {bridge}"] if bridge in links else [])


def command_lines() -> list[str]:
    """Every process's command line (what `ps -eo args` shows)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        out.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return out


def web_pod(mount: str) -> str:
    """A pod that writes into its volume at `mount` (a path that does not exist on the host) and
    is Ready once its exec probe finds that file."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "runtimeClassName": "host-process",  # from examples/db-headless.yaml: host programs
            "volumes": [{"name": "data", "emptyDir": {}}],
            "containers": [{
                "name": "web", "image": "sh",
                "command": ["sh", "-c", f"hostname > {mount}/who; grep nameserver /etc/resolv.conf; "
                                        "exec sleep 1000"],
                "volumeMounts": [{"name": "data", "mountPath": mount}],
                # an exec probe runs inside the sandbox: the file is only there at mountPath
                "readinessProbe": {"exec": {"command": ["cat", f"{mount}/who"]}, "periodSeconds": 1},
            }],
        },
    })


def test_reference_scenario_in_network_namespaces(start_podns: Callable[..., Podns]) -> None:
    """given `podns up --pod-network netns` and the db-headless example: the pods are Ready with
    10.244.x IPs, each in its own namespace; inside a pod `getent hosts db-service` gives the three
    pod IPs and `db-0.db-service` resolves through the search path (getent and nslookup); a client
    in the root namespace connects to a pod IP; a volume appears at its mountPath. A SIGKILLed
    podns leaves namespaces that the next start removes; deleting the pods and stopping podns
    leaves no namespace, veth, bridge, /etc/netns dir, mount point or process. The ClusterIP proxy
    serves root-namespace clients; the Node's Event says pods cannot reach such ClusterIPs."""
    # a service range of its own in 127/8, so the ClusterIP proxy can listen in the root namespace
    # the default runtime (podman as root): the example's RuntimeClass runs it with the host's Python
    p = start_podns("--pod-network", "netns",
                    "--service-cidr", f"127.{150 + os.getpid() % 100}.0.0/16")
    p.kubectl("apply", "-f", str(REPO / "examples" / "db-headless.yaml"), check=True)
    mount = f"/podns-e2e-{os.getpid()}-{int(time.time())}/data"
    p.kubectl("apply", "-f", "-", input=web_pod(mount), check=True)
    dbs = ["db-0", "db-1", "db-2"]
    ips = wait(lambda: ready_ips(p, [*dbs, "web"]), 60, "pods Ready")
    assert all(re.fullmatch(r"10\.244\.\d+\.\d+", ip) for ip in ips.values()), ips
    assert len(set(ips.values())) == 4
    # a loopback service range cannot reach pods' namespaces: the node says so on its Node
    def unusable() -> list[str]:
        events = json.loads(p.kubectl("get", "events", "-A", "-o", "json").stdout)["items"]
        return [e["message"] for e in events if e.get("reason") == "ServiceCIDRUnusable"]
    said = wait(unusable, 30, "ServiceCIDRUnusable")
    assert "is a loopback range" in said[0] and "--service-cidr 10.96.0.0/16" in said[0], said
    uids = {name: obj["metadata"]["uid"] for name, obj in pods(p).items()}
    spaces = {name: netns.netns_name(uid) for name, uid in uids.items()}
    bridge = netns.bridge_name(str(json.loads(p.kubectl("get", "node", "-o", "json").stdout)
                                   ["items"][0]["spec"]["podCIDR"]))

    # names through the pod's resolv.conf: cluster DNS via the node's relay, search path, ndots:5
    db0 = spaces["db-0"]
    got = in_pod(db0, "getent", "hosts", "db-service")
    assert sorted(line.split()[0] for line in got.splitlines()) == sorted(ips[d] for d in dbs)
    assert in_pod(spaces["web"], "getent", "hosts", "db-0.db-service").split()[0] == ips["db-0"]
    looked = in_pod(spaces["web"], "nslookup", "db-1.db-service")
    assert "db-1.db-service.default.svc.cluster.local" in looked and ips["db-1"] in looked
    # this cluster's db processes (other podns on the machine may run the same scenario)
    mine = {ips[d] for d in dbs}
    assert len([c for c in command_lines() if "http.server 5432 --bind" in c and c.split()[-1] in mine]) == 3
    # the pod's own view: its eth0 holds its IP
    assert f"inet {ips['db-2']}/" in in_pod(spaces["db-2"], "ip", "-4", "addr", "show", "eth0")

    # a client in the root namespace reaches a pod directly
    with socket.create_connection((ips["db-1"], 5432), timeout=3) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert s.recv(12).startswith(b"HTTP/1.0 200")

    # the ClusterIP proxy, for clients in the root namespace, reaches the pods through the bridge
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-lb"},
           "spec": {"selector": {"app": "db"}, "ports": [{"port": 80, "targetPort": 5432}]}}
    p.kubectl("apply", "-f", "-", input=json.dumps(svc), check=True)
    cluster_ip = json.loads(p.kubectl("get", "svc", "db-lb", "-o", "json").stdout)["spec"]["clusterIP"]

    def via_proxy() -> bool:
        try:
            with socket.create_connection((cluster_ip, 80), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return s.recv(12).startswith(b"HTTP/1.0 200")
        except OSError:
            return False
    wait(via_proxy, 10, f"connection through the cluster IP {cluster_ip}")

    # the volume at its mountPath: written inside, found in the emptyDir on the host
    who = p.data_dir / "node" / "pods" / f"default_web_{uids['web']}" / "volumes" / "data" / "who"
    assert wait(lambda: who.exists() and who.read_text().strip(), 10, "file in volume") == "web"
    logs = p.kubectl("logs", "web").stdout
    assert "nameserver 10.244." in logs

    # a crashed agent (SIGKILL, pods die with it) leaves namespaces; the next start cleans them
    # up and runs the pods again with the same addresses
    before = {name: started(obj) for name, obj in pods(p).items()}
    p.kill()
    assert leftovers(set(spaces.values()), bridge), "SIGKILL should leave the namespaces behind"
    p.start()
    again = wait(lambda: ready_ips(p, [*dbs, "web"], after=before), 60, "pods Ready again")
    assert again == ips
    assert re.search(r"removed \d+ namespace\(s\)/link\(s\) left by a previous run", p.log())
    assert in_pod(db0, "getent", "hosts", "db-0.db-service").split()[0] == ips["db-0"]

    # deleting pods releases their namespaces at once; stopping podns releases the rest
    p.kubectl("delete", "pod", "web", "--wait=true", check=True, timeout=60)
    wait(lambda: not leftovers({spaces["web"]}, "-"), 10, "web's namespace removed")
    # the agent removes the mount points right after the namespace and its veth (another `ip` call)
    wait(lambda: not Path(mount).exists() and not Path(mount).parent.exists(), 10,
         "web's mount point removed")
    assert p.stop() == 0
    assert leftovers(set(spaces.values()), bridge) == []
    # this cluster's processes only (other podns on the machine may run the same scenario)
    assert not [c for c in command_lines()
                if ("http.server 5432 --bind" in c and c.split()[-1] in mine) or mount in c]
