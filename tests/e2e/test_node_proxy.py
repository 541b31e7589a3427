"""ClusterIP proxy end to end: a Service's cluster IP (loopback service CIDR) reaches its ready pods."""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest

from tests.e2e.conftest import Podns
from tests.e2e.test_node_pods import pod_manifest, ready_ip, wait

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

SERVICE = json.dumps({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
    "spec": {"selector": {"app": "db"}, "ports": [{"name": "pg", "port": 6000, "targetPort": "pg"}]},
})


UDP_ECHO = """
import os, socket, threading
def tcp():
    t = socket.socket(); t.bind((os.environ['POD_IP'], 5354)); t.listen()
    while True:
        c, _ = t.accept(); data = b''
        while chunk := c.recv(4096):
            data += chunk
        c.sendall(data[::-1]); c.close()
threading.Thread(target=tcp, daemon=True).start()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((os.environ['POD_IP'], 5353))
while True:
    data, addr = s.recvfrom(2048); s.sendto(b'echo:' + data, addr)
"""
ECHO_CONTAINER = {
    "name": "echo", "image": "python", "command": [sys.executable, "-c", UDP_ECHO],
    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
    "ports": [{"name": "dns", "containerPort": 5353, "protocol": "UDP"},
              {"name": "rev", "containerPort": 5354}],
}
UDP_POD = json.dumps({"apiVersion": "v1", "kind": "Pod",
                      "metadata": {"name": "echo", "labels": {"app": "echo"}},
                      "spec": {"containers": [ECHO_CONTAINER]}})
UDP_SERVICE = json.dumps({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
    "spec": {"selector": {"app": "echo"},
             "ports": [{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"},
                       {"name": "rev", "port": 54, "targetPort": "rev"}]},
})


def udp_ask(ip: str, port: int, payload: bytes) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(payload, (ip, port))
        try:
            return s.recv(2048)
        except OSError:
            return None


def talk(ip: str, port: int) -> str:
    with socket.create_connection((ip, port), timeout=2) as s:
        return s.recv(100).decode()


@pytest.mark.podns_args("--service-cidr", "127.96.0.0/16")
def test_cluster_ip_reaches_ready_pods_and_follows_changes(podns: Podns) -> None:
    """given a ClusterIP Service over two pods, connections to clusterIP:port reach both; after
    one pod is deleted, every connection reaches the other."""
    for name in ("db-0", "db-1"):
        assert podns.kubectl("apply", "--validate=false", "-f", "-", input=pod_manifest(name)).returncode == 0
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=SERVICE).returncode == 0
    cluster_ip = json.loads(podns.kubectl("get", "svc", "db", "-o", "json").stdout)["spec"]["clusterIP"]
    assert cluster_ip.startswith("127.96.")
    wait(lambda: ready_ip(podns, "db-0") and ready_ip(podns, "db-1"), what="pods Ready")

    def both_seen() -> bool:
        seen = set()
        for _ in range(10):
            try:
                seen.add(talk(cluster_ip, 6000))
            except OSError:
                return False
        return seen == {"db-0", "db-1"}

    wait(both_seen, what="both pods behind the cluster IP")
    assert podns.kubectl("delete", "pod", "db-0", "--wait=true", timeout=30).returncode == 0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answers = {talk(cluster_ip, 6000) for _ in range(6)}
        if answers == {"db-1"}:
            break
        time.sleep(0.05)
    assert answers == {"db-1"}


@pytest.mark.podns_args("--service-cidr", "127.96.0.0/16")
def test_udp_and_tcp_half_close(podns: Podns) -> None:
    """given a Service over an echo pod, datagrams to clusterIP:53 come back from the pod, and a TCP
    client that half-closes (shutdown write) through the proxy still gets the whole answer."""
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=UDP_POD).returncode == 0
    assert podns.kubectl("apply", "--validate=false", "-f", "-", input=UDP_SERVICE).returncode == 0
    cluster_ip = json.loads(podns.kubectl("get", "svc", "echo", "-o", "json").stdout)["spec"]["clusterIP"]
    assert wait(lambda: udp_ask(cluster_ip, 53, b"hi") == b"echo:hi", what="UDP echo via cluster IP")
    payload = bytes(range(256)) * 400
    with socket.create_connection((cluster_ip, 54), timeout=5) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got == payload[::-1]
