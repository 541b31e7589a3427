"""Pods and checks shared by the simulated-machines tests (`tests/netsim.py`): a headless `db`
StatefulSet pinned to one machine, server and client pods pinned to a node, TCP talks from inside a
pod (`kubectl exec` with python3), the routes and Node conditions of a machine."""

from __future__ import annotations

import functools
import json
from typing import Any

from tests._support import wait_until
from tests.netsim import ControlPlane, Machine

wait = functools.partial(wait_until, step=0.2)

#: a TCP server answering every connection with the pod's name (python3: the process runtime's
#: pods run on the machine's own tools)
SERVER = ("import os, socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('0.0.0.0', 5432)); s.listen(64)\n"
          "while True:\n"
          "    c, _ = s.accept(); c.sendall(os.environ['POD_NAME'].encode()); c.close()\n")
#: the same server on both families (dual-stack pods): "::" with IPV6_V6ONLY off takes IPv4 too
SERVER_DUAL = SERVER.replace("s = socket.socket(); ", "s = socket.socket(socket.AF_INET6); "
                             "s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); "
                             ).replace("('0.0.0.0', 5432)", "('::', 5432)")
#: connect to argv[1]:argv[2] (a name goes through the pod's resolv.conf) and print the answer
CLIENT = ("import socket, sys\n"
          "c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n"
          "print(c.recv(100).decode())\n")


def _container(name: str, *, serve: bool, dual: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": name, "image": "python",
        "command": ["python3", "-c", SERVER_DUAL if dual else SERVER] if serve else ["sleep", "100000"],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }
    if serve:
        c["ports"] = [{"name": "db", "containerPort": 5432}]
        c["readinessProbe"] = {"tcpSocket": {"port": 5432}, "periodSeconds": 1}
    return c


def pod(name: str, node: str, *, serve: bool = True, dual: bool = False) -> dict[str, Any]:
    """A pod bound to `node` (a server on 5432, on both families when `dual`, or a client that
    sleeps)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [_container(name, serve=serve, dual=dual)]}}


def db(node: str, *, dual: bool = False) -> list[dict[str, Any]]:
    """The reference scenario's headless `db-service` and a one-replica StatefulSet `db` on `node`
    (`dual`: the Service PreferDualStack, the server on both families)."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-service"},
           "spec": {"clusterIP": "None", "selector": {"app": "db"},
                    **({"ipFamilyPolicy": "PreferDualStack"} if dual else {}),
                    "ports": [{"name": "db", "port": 5432, "targetPort": 5432}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db-service", "replicas": 1,
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}},
                                 "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                          "terminationGracePeriodSeconds": 1,
                                          "containers": [_container("db", serve=True, dual=dual)]}}}}
    return [svc, sts]


def apply(cp: ControlPlane, *objs: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    r = cp.kubectl("apply", "-f", "-", input=json.dumps(doc))
    assert r.returncode == 0, r.stderr


def ready_ip(cp: ControlPlane, name: str) -> str | None:
    """The pod's IP once it is Ready (running, for a pod without probe)."""
    r = cp.kubectl("get", "pod", name, "-o", "json")
    if r.returncode != 0:
        return None
    st = json.loads(r.stdout).get("status") or {}
    if any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []):
        return str(st.get("podIP") or "") or None
    return None


def talk(cp: ControlPlane, client: str, host: str, port: int = 5432) -> str:
    """What the server at host:port says to a connection from pod `client` ("" on failure)."""
    r = cp.kubectl("exec", client, "--", "python3", "-c", CLIENT, host, str(port), timeout=30)
    return r.stdout.strip() if r.returncode == 0 else ""


def node(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    r = cp.kubectl("get", "node", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else None


def network_condition(cp: ControlPlane, name: str) -> dict[str, Any] | None:
    """The Node's NetworkUnavailable condition (None while it has none)."""
    for c in ((node(cp, name) or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == "NetworkUnavailable":
            return dict(c)
    return None


def pod_cidr(cp: ControlPlane, name: str) -> str:
    return str(((node(cp, name) or {}).get("spec") or {}).get("podCIDR") or "")


def podns_routes(m: Machine, family: str = "-4") -> dict[str, dict[str, Any]]:
    """dst -> route of the routes podns programmed on machine `m` (proto 158); `family` "-6" for
    the IPv6 ones."""
    got = json.loads(m.ip(family, "-j", "route", "show", "proto", "158") or "[]")
    return {str(r["dst"]): r for r in got}
