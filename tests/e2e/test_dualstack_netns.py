"""Dual-stack end to end: `podns up --pod-network netns --service-cidr <IPv4>,<IPv6>` gives pods an
address of each family, a dual-stack headless StatefulSet gets EndpointSlices per family, the
cluster DNS answers AAAA and ip6.arpa PTR for pods and Services (real `dig`), and one pod connects
to another over IPv6 inside the namespaces this test's podns created."""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from podns.node import netns
from tests._support import wait_until
from tests.e2e.conftest import Podns

NETNS_SKIP = netns.unavailable_reason()
pytestmark = [pytest.mark.e2e, pytest.mark.netns, pytest.mark.timeout(150),
              pytest.mark.skipif(NETNS_SKIP is not None, reason=NETNS_SKIP or "")]

wait = functools.partial(wait_until, step=0.1)
ZONE = "cluster.local"
#: service ranges of this test run (only ever allocated, never routed)
#: clear of 10.244.0.0/16, where pod CIDRs are cut (the agent refuses a service range over them)
V4_SERVICES = f"10.{[n for n in range(200, 251) if n != 244][os.getpid() % 50]}.0.0/16"
V6_SERVICES = f"fd00:10:96:{os.getpid() % 65536:x}::/112"

MANIFEST = [
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-service"},
     "spec": {"clusterIP": "None", "ipFamilyPolicy": "PreferDualStack", "selector": {"app": "db6"},
              "ports": [{"name": "postgres", "port": 5432, "targetPort": "postgres"}]}},
    {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db-lb"},
     "spec": {"ipFamilyPolicy": "RequireDualStack", "selector": {"app": "db6"},
              "ports": [{"port": 80, "targetPort": 5432}]}},
    {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
     "spec": {"serviceName": "db-service", "replicas": 2, "podManagementPolicy": "Parallel",
              "selector": {"matchLabels": {"app": "db6"}},
              "template": {"metadata": {"labels": {"app": "db6"}}, "spec": {
                  "terminationGracePeriodSeconds": 2,
                  "containers": [{
                      "name": "db", "image": "python:3.11",
                      # "::" takes IPv4 too (http.server clears IPV6_V6ONLY), inside the pod only
                      "command": ["python3", "-m", "http.server", "5432", "--bind", "::"],
                      "ports": [{"name": "postgres", "containerPort": 5432}],
                      "readinessProbe": {"tcpSocket": {"port": "postgres"}, "periodSeconds": 1}}]}}}},
]


def get(p: Podns, *what: str) -> Any:
    return json.loads(p.kubectl("get", *what, "-o", "json", check=True).stdout)


def ready_pods(p: Podns) -> dict[str, dict[str, Any]] | None:
    items = {x["metadata"]["name"]: x for x in get(p, "pods")["items"]}
    for name in ("db-0", "db-1"):
        conds = ((items.get(name) or {}).get("status") or {}).get("conditions") or []
        if not any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
            return None
    return items


def dig(p: Podns, *args: str) -> list[str]:
    out = subprocess.run(["dig", f"@{p.dns_addr[0]}", "-p", str(p.dns_addr[1]), "+short", "+time=2",
                          "+tries=3", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    return sorted(out.stdout.split())


def in_pod(ns: str, *cmd: str) -> str:
    out = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, f"{cmd}: {out.stdout} {out.stderr}"
    return out.stdout


def slices_by_family(p: Podns, service: str) -> dict[str, dict[str, str]] | None:
    """addressType -> {hostname: address} of the Service's ready endpoints (None until both
    families list both pods)."""
    items = get(p, "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
    out: dict[str, dict[str, str]] = {}
    for sl in items:
        for ep in sl.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready"):
                out.setdefault(sl["addressType"], {})[ep.get("hostname") or ep["targetRef"]["name"]] = \
                    ep["addresses"][0]
    return out if {k: len(v) for k, v in out.items()} == {"IPv4": 2, "IPv6": 2} else None


def test_dual_stack_pods_services_dns(start_podns: Callable[..., Podns]) -> None:
    """given a dual-stack netns cluster and a PreferDualStack headless StatefulSet: every pod has
    an IPv4 (status.podIP) and an IPv6 address on its eth0; the Node lists both pod CIDRs; the
    Services get both families (the ClusterIP one an address in each service range); the
    EndpointSlice controller writes an IPv4 and an IPv6 slice; `dig AAAA db-0.db-service...`
    answers db-0's IPv6 address, `dig -x` it the pod's name under ip6.arpa, AAAA on the
    ClusterIP Service its IPv6 ClusterIP; db-0 connects to db-1 over IPv6."""
    p = start_podns("--pod-network", "netns", "--container-runtime", "process",
                    "--service-cidr", f"{V4_SERVICES},{V6_SERVICES}")
    p.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": MANIFEST}),
              check=True)
    found = wait(lambda: ready_pods(p), 60, "db pods Ready")
    ips: dict[str, dict[str, str]] = {}
    for name in ("db-0", "db-1"):
        st = found[name]["status"]
        pod_ips = [x["ip"] for x in st["podIPs"]]
        assert len(pod_ips) == 2 and st["podIP"] == pod_ips[0], st
        v4, v6 = (ipaddress.ip_address(ip) for ip in pod_ips)
        assert v4.version == 4 and v6.version == 6, pod_ips
        ips[name] = {"IPv4": str(v4), "IPv6": str(v6)}
    node = get(p, "nodes")["items"][0]["spec"]
    assert [ipaddress.ip_network(c).version for c in node["podCIDRs"]] == [4, 6], node
    assert all(ipaddress.ip_address(ips[n]["IPv6"]) in ipaddress.ip_network(node["podCIDRs"][1]) for n in ips)

    headless = get(p, "svc", "db-service")["spec"]
    assert headless["ipFamilies"] == ["IPv4", "IPv6"] and headless["clusterIPs"] == ["None"]
    lb = get(p, "svc", "db-lb")["spec"]
    assert lb["ipFamilies"] == ["IPv4", "IPv6"] and lb["clusterIP"] == lb["clusterIPs"][0]
    assert ipaddress.ip_address(lb["clusterIPs"][0]) in ipaddress.ip_network(V4_SERVICES)
    assert ipaddress.ip_address(lb["clusterIPs"][1]) in ipaddress.ip_network(V6_SERVICES)

    slices = wait(lambda: slices_by_family(p, "db-service"), 30, "an IPv4 and an IPv6 EndpointSlice")
    assert slices == {"IPv4": {n: ips[n]["IPv4"] for n in ips}, "IPv6": {n: ips[n]["IPv6"] for n in ips}}

    name0 = f"db-0.db-service.default.svc.{ZONE}"
    wait(lambda: dig(p, "AAAA", name0) == [ips["db-0"]["IPv6"]], 10, "AAAA of db-0")
    assert dig(p, "A", name0) == [ips["db-0"]["IPv4"]]
    assert dig(p, "AAAA", f"db-service.default.svc.{ZONE}") == sorted(ips[n]["IPv6"] for n in ips)
    assert dig(p, "-x", ips["db-0"]["IPv6"]) == [name0 + "."]
    assert dig(p, "AAAA", f"db-lb.default.svc.{ZONE}") == [lb["clusterIPs"][1]]
    assert dig(p, "-x", lb["clusterIPs"][1]) == [f"db-lb.default.svc.{ZONE}."]

    # pod to pod over IPv6, inside the namespaces of this cluster
    spaces = {n: netns.netns_name(found[n]["metadata"]["uid"]) for n in ips}
    assert f"inet6 {ips['db-1']['IPv6']}/" in in_pod(spaces["db-1"], "ip", "-6", "addr", "show", "eth0")
    probe = ("import socket, sys\n"
             "s = socket.create_connection((sys.argv[1], 5432), timeout=5)\n"
             "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
             "print(s.recv(12).decode(), s.getpeername()[0])\n")
    out = in_pod(spaces["db-0"], "python3", "-c", probe, ips["db-1"]["IPv6"])
    assert out.startswith("HTTP/1.0 200") and out.split()[-1] == ips["db-1"]["IPv6"], out
    # and the AAAA name, resolved inside the pod through its resolv.conf (the node's relay)
    assert ips["db-1"]["IPv6"] in in_pod(spaces["db-0"], "getent", "ahostsv6", "db-1.db-service")

    bridge = netns.bridge_name(node["podCIDRs"][0])
    assert p.stop() == 0
    assert bridge not in {str(link.get("ifname")) for link in netns._json("link")}
