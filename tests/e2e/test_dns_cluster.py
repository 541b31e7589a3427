"""Cluster DNS end to end: `podns up` (API, controllers, node agent, DNS), real kubectl and dig."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from tests._support import wait_until as wait
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), pytest.mark.podns_args("--dns-upstream", "none")]

SERVER = ("import os, socket\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind((os.environ['POD_IP'], 5432)); s.listen()\n"
          "while True: s.accept()[0].close()\n")


def statefulset(replicas: int) -> str:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
           "spec": {"clusterIP": "None", "selector": {"app": "db"},
                    "ports": [{"name": "pg", "port": 5432, "targetPort": "pg"}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"serviceName": "db", "replicas": replicas, "podManagementPolicy": "Parallel",
                    "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                        "terminationGracePeriodSeconds": 2,
                        "containers": [{
                            "name": "db", "image": "python", "command": [sys.executable, "-c", SERVER],
                            "env": [{"name": "POD_IP",
                                     "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                            "ports": [{"name": "pg", "containerPort": 5432}],
                            "readinessProbe": {"tcpSocket": {"port": "pg"}, "periodSeconds": 1}}]}}}}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, sts]})


def query(p: Podns, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return dns.query.tcp(q, p.dns_addr[0], port=p.dns_addr[1], timeout=2)
    return dns.query.udp(q, p.dns_addr[0], port=p.dns_addr[1], timeout=2)


def addresses(msg: dns.message.Message) -> set[str]:
    return {rd.to_text() for rrset in msg.answer if rrset.rdtype in (1, 28) for rd in rrset}


def pod_ips(p: Podns) -> dict[str, str]:
    pods = json.loads(p.kubectl("get", "pods", "-l", "app=db", "-o", "json", check=True).stdout)["items"]
    return {x["metadata"]["name"]: x["status"].get("podIP", "") for x in pods}


def test_statefulset_behind_headless_service(podns: Podns) -> None:
    """Given a headless Service and a 3-replica StatefulSet, DNS serves every ready pod IP, each
    pod by its stable name, SRV with targets and glue, one PTR per pod IP, over UDP and TCP;
    names of ordinals not ready yet get NXDOMAIN with a negative TTL of at most 1 s; after a
    scale-down the removed pods disappear."""
    svc = "db.default.svc.cluster.local."
    podns.kubectl("apply", "-f", "-", input=statefulset(3), check=True)

    def short_negative_or_ready() -> bool:  # once the DNS has seen the StatefulSet (milliseconds)
        msg = query(podns, "db-2." + svc)
        return msg.rcode() == dns.rcode.NOERROR or msg.authority[0][0].minimum <= 1

    wait(short_negative_or_ready, what="db-2 known to be about to exist")
    try:
        wait(lambda: len(addresses(query(podns, svc))) == 3, what="3 ready pods in DNS")
    except AssertionError:
        print(podns.kubectl("get", "pods,endpointslices", "-o", "wide").stdout, query(podns, svc),
              podns.log())
        raise
    ips = pod_ips(podns)
    assert addresses(query(podns, svc)) == set(ips.values())
    assert addresses(query(podns, svc, tcp=True)) == set(ips.values())
    for name, ip in ips.items():
        assert addresses(query(podns, f"{name}.{svc}")) == {ip}
        ptr = query(podns, dns.reversename.from_address(ip).to_text(), "PTR")
        assert [rd.to_text() for rrset in ptr.answer for rd in rrset] == [f"{name}.{svc}"]
    srv = query(podns, "_pg._tcp." + svc, "SRV")
    assert sorted(rd.target.to_text() for rd in srv.answer[0]) == sorted(f"{n}.{svc}" for n in ips)
    assert {rd.to_text() for rrset in srv.additional for rd in rrset} == set(ips.values())
    dig = subprocess.run(["dig", f"@{podns.dns_addr[0]}", "-p", str(podns.dns_addr[1]), "+tcp", "+short",
                          "db-0." + svc], capture_output=True, text=True, timeout=10).stdout.split()
    assert dig == [ips["db-0"]]
    podns.kubectl("scale", "statefulset", "db", "--replicas=1", check=True)
    wait(lambda: addresses(query(podns, svc)) == {ips["db-0"]}, what="scale-down in DNS")
    wait(lambda: query(podns, "db-2." + svc).rcode() == dns.rcode.NXDOMAIN, what="db-2 gone")


SLICE = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
         "metadata": {"name": "manual-1", "labels": {"kubernetes.io/service-name": "manual"}},
         "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
         "endpoints": [{"addresses": ["10.77.0.1"], "conditions": {"ready": True}, "hostname": "one"},
                       {"addresses": ["10.77.0.2"]},
                       {"addresses": ["10.77.0.3"], "conditions": {"ready": False}}]}


def test_selectorless_services_clusterip_and_externalname(podns: Podns) -> None:
    """Hand-written EndpointSlice: ready and unset-ready endpoints are served, ready=false is not,
    and flipping it shows up at once; a ClusterIP service answers its allocated IP and SRV to
    itself; an ExternalName answers a CNAME; unknown names are NXDOMAIN with the zone SOA."""
    manual = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "manual"},
              "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}}
    web = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "none"}, "ports": [{"name": "http", "port": 80}]}}
    ext = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ext"},
           "spec": {"type": "ExternalName", "externalName": "db.example.test"}}
    items = {"apiVersion": "v1", "kind": "List", "items": [manual, web, ext, SLICE]}
    podns.kubectl("apply", "-f", "-", input=json.dumps(items), check=True)
    name = "manual.default.svc.cluster.local."
    wait(lambda: addresses(query(podns, name)) == {"10.77.0.1", "10.77.0.2"}, what="manual slice in DNS")
    assert addresses(query(podns, "one." + name)) == {"10.77.0.1"}
    assert addresses(query(podns, "10-77-0-2." + name)) == {"10.77.0.2"}
    assert query(podns, "10-77-0-3." + name).rcode() == dns.rcode.NXDOMAIN
    flipped = json.loads(json.dumps(SLICE))
    flipped["endpoints"][2]["conditions"]["ready"] = True
    started = time.monotonic()
    podns.kubectl("apply", "-f", "-", input=json.dumps(flipped), check=True)
    wait(lambda: "10.77.0.3" in addresses(query(podns, name)), timeout=5, what="ready flip")
    assert time.monotonic() - started < 5
    cluster_ip = podns.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}", check=True).stdout
    web_name = "web.default.svc.cluster.local."
    wait(lambda: addresses(query(podns, web_name)) == {cluster_ip}, what="ClusterIP in DNS")
    srv = query(podns, "_http._tcp." + web_name, "SRV")
    assert [rd.to_text() for rd in srv.answer[0]] == [f"0 100 80 {web_name}"]
    cname = query(podns, "ext.default.svc.cluster.local.", "CNAME")
    assert [rd.to_text() for rd in cname.answer[0]] == ["db.example.test."]
    missing = query(podns, "nope.default.svc.cluster.local.")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert missing.authority[0].rdtype == dns.rdatatype.SOA
    assert query(podns, "example.test.").rcode() == dns.rcode.REFUSED  # no upstream configured


def podns_dig(p: Podns, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podns", "dig", "--data-dir", str(p.data_dir), *args],
                          capture_output=True, text=True, timeout=30, cwd=p.workdir)


def test_podns_dig_resolves_with_search_path_and_explains(podns: Podns) -> None:
    """`podns dig` finds the server of the data dir, expands short names with the pod search
    path, and explains failures from the API: missing namespace, missing service, no ready
    endpoints."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "cold"},
           "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}}
    sl = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
          "metadata": {"name": "cold-1", "labels": {"kubernetes.io/service-name": "cold"}},
          "endpoints": [{"addresses": ["10.66.0.1"], "conditions": {"ready": False}}]}
    warm = json.loads(json.dumps(SLICE))
    warm["metadata"] = {"name": "warm-1", "labels": {"kubernetes.io/service-name": "warm"}}
    warm_svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "warm"},
                "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 8080}]}}
    items = {"apiVersion": "v1", "kind": "List", "items": [svc, sl, warm_svc, warm]}
    podns.kubectl("apply", "-f", "-", input=json.dumps(items), check=True)
    wait(lambda: addresses(query(podns, "warm.default.svc.cluster.local.")), what="warm in DNS")
    ok = podns_dig(podns, "warm")
    assert ok.returncode == 0, ok.stderr
    assert "Name:    warm.default.svc.cluster.local." in ok.stdout and "10.77.0.1" in ok.stdout
    srv = podns_dig(podns, "_http._tcp.warm", "SRV")
    assert srv.returncode == 0 and "one.warm.default.svc.cluster.local." in srv.stdout
    cold = podns_dig(podns, "cold")
    assert cold.returncode == 1 and "has no ready endpoints" in cold.stdout, cold.stdout
    missing = podns_dig(podns, "nosuch")
    assert "no Service 'nosuch' in namespace 'default'" in missing.stdout, missing.stdout
    other = podns_dig(podns, "warm", "-n", "elsewhere")
    assert "namespace 'elsewhere' does not exist" in other.stdout, other.stdout
