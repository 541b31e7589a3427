"""End to end inside `podns up`: the controllers with the real node agent and cluster DNS — a
StatefulSet's pods get stable DNS names, a failing readiness probe removes a pod from DNS."""

from __future__ import annotations

import json
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest

from ._controllers_e2e import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: kv}
spec:
  clusterIP: None
  selector: {app: kv}
  ports: [{name: kv, port: 7000}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: kv}
spec:
  serviceName: kv
  replicas: 2
  selector: {matchLabels: {app: kv}}
  template:
    metadata: {labels: {app: kv}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: kv
        image: local
        command: ["sleep", "600"]
        readinessProbe:
          exec: {command: ["sh", "-c", "test ! -e MARKERS/unready-$HOSTNAME"]}
          periodSeconds: 1
"""


def a_records(addr: tuple[str, int], name: str) -> list[str]:
    query = dns.message.make_query(name, dns.rdatatype.A)
    answer = dns.query.udp(query, addr[0], port=addr[1], timeout=2)
    return sorted(r.address for rrset in answer.answer for r in rrset)


def test_statefulset_pods_resolve_and_leave_dns_when_unready(podns: Any, tmp_path: Any) -> None:
    """Given `podns up`, when a headless StatefulSet is applied, then `rollout status` completes,
    `kv.default.svc.cluster.local` answers both pod IPs and `kv-1.kv...` answers kv-1's; when
    kv-1's readiness probe fails, it leaves the service name."""
    markers = tmp_path / "markers"
    markers.mkdir()
    r = podns.kubectl("apply", "--validate=false", "-f", "-", input=MANIFEST.replace("MARKERS", str(markers)))
    assert r.returncode == 0, r.stderr
    r = podns.kubectl("rollout", "status", "statefulset/kv", "--timeout=60s", timeout=70)
    assert r.returncode == 0, r.stdout + r.stderr + podns.log()
    pods = {
        p["metadata"]["name"]: p
        for p in json.loads(podns.kubectl("get", "pods", "-o", "json").stdout)["items"]
    }
    ips = {name: p["status"]["podIP"] for name, p in pods.items()}
    assert sorted(ips) == ["kv-0", "kv-1"]
    zone = "default.svc.cluster.local"
    eventually(lambda: a_records(podns.dns_addr, f"kv.{zone}") == sorted(ips.values()))
    assert a_records(podns.dns_addr, f"kv-1.kv.{zone}") == [ips["kv-1"]]

    (markers / "unready-kv-1").touch()  # kv-1's readiness probe now fails
    eventually(lambda: a_records(podns.dns_addr, f"kv.{zone}") == [ips["kv-0"]], timeout=20)
    slices = json.loads(podns.kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=kv",
                                      "-o", "json").stdout)["items"]
    ready = {e["hostname"]: e["conditions"]["ready"] for s in slices for e in s.get("endpoints") or []}
    assert ready == {"kv-0": True, "kv-1": False}
    (markers / "unready-kv-1").unlink()
    eventually(lambda: a_records(podns.dns_addr, f"kv.{zone}") == sorted(ips.values()), timeout=20)
