"""NodePorts in loopback mode end to end (no root needed): the userspace proxy listens on
`127.0.0.1:<nodePort>` for a type=NodePort Service and balances to its ready pods as its
ClusterIP does (TCP and UDP); a Service that goes back to ClusterIP closes the port; a node port
another process holds is reported (a Warning Event `FailedToBindNodePort` on the Service, the
log) without harming anything else, and served once the Service changes after the port is
free; `internalTrafficPolicy: Local` and `externalTrafficPolicy: Local` follow the endpoints'
`nodeName` (a hand-written EndpointSlice says "elsewhere"), and a LoadBalancer's health check
node port answers as kube-proxy's.

One `podns up` for the module, with a random loopback service CIDR and a random window of the
node port range, so that concurrent runs of this module on one machine do not meet; a node port
that some other process holds anyway is detected (the Event) and the Service made again."""

from __future__ import annotations

import functools
import json
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._support import wait_until
from tests.e2e.conftest import Podns
from tests.e2e.test_node_pods import pod_manifest, ready_ip
from tests.e2e.test_node_proxy import UDP_POD, udp_ask

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

wait = functools.partial(wait_until, timeout=30.0, step=0.1)
#: a random 100-port window of the top of Kubernetes' default node port range, below the
#: ephemeral ports (32768+) and apart from test_node_clusterip_nat's windows (whose iptables
#: clusters take 127.0.0.1:<nodePort> of the whole machine), and a random loopback /16
BASE = random.randrange(32000, 32600)
NODE_PORTS = (BASE, BASE + 99)
SERVICE_CIDR = f"127.{random.randint(100, 250)}.0.0/16"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Podns]:
    """A loopback-mode `podns up` with two pods np-0, np-1 behind app=db (port pg, 5432) and a UDP
    echo pod (names no other test's pods have: the answers are this cluster's)."""
    p = Podns(tmp_path_factory.mktemp("nodeport"), "--service-cidr", SERVICE_CIDR,
              "--service-node-port-range", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}")
    p.start()
    try:
        for manifest in (pod_manifest("np-0"), pod_manifest("np-1"), UDP_POD):
            apply(p, manifest)
        wait(lambda: all(ready_ip(p, n) for n in ("np-0", "np-1", "echo")), what="pods Ready")
        yield p
    finally:
        p.stop()


def apply(p: Podns, manifest: str) -> None:
    r = p.kubectl("apply", "--validate=false", "-f", "-", input=manifest)
    assert r.returncode == 0, r.stderr


def get(p: Podns, kind: str, name: str) -> dict:
    r = p.kubectl("get", kind, name, "-o", "json")
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


def answer(host: str, port: int) -> str:
    """What one TCP connection to host:port answers, or the error's name."""
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            return s.recv(100).decode() or "closed"
    except OSError as exc:
        return type(exc).__name__


def events_of(p: Podns, name: str, reason: str, uid: str = "") -> list[str]:
    """The messages of the Events `reason` about the object `name` (of uid `uid` when given)."""
    of_uid = f",involvedObject.uid={uid}" if uid else ""
    r = p.kubectl("get", "events", "-o", "json", "--field-selector",
                  f"involvedObject.name={name},reason={reason}{of_uid}")
    if r.returncode != 0:
        return []
    return [str(e.get("message")) for e in json.loads(r.stdout).get("items") or []]


def node_port_service(p: Podns, name: str, spec: dict, serves: Callable[[int], bool]) -> int:
    """Create the NodePort Service `name` (`spec` beside type NodePort, which it may override) and
    return its (first) node port
    once `serves(node_port)` is true; when the agent reports the port as held by some other
    process of this machine (FailedToBindNodePort), the Service is made again (a new port)."""
    for _ in range(3):
        apply(p, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                             "spec": {"type": "NodePort", **spec}}))
        svc = get(p, "svc", name)
        port, uid = int(svc["spec"]["ports"][0]["nodePort"]), svc["metadata"]["uid"]
        assert NODE_PORTS[0] <= port <= NODE_PORTS[1]

        def outcome(port: int = port, uid: str = uid) -> str | None:
            if serves(port):
                return "served"
            held = any(events_of(p, name, reason, uid)
                       for reason in ("FailedToBindNodePort", "FailedToStartServiceHealthcheck"))
            return "held" if held else None
        if wait(outcome, what=f"node port {port} of {name} served") == "served":
            return port
        assert p.kubectl("delete", "svc", name).returncode == 0
    raise AssertionError(f"no free node port for {name} in three tries")


def node_name(p: Podns) -> str:
    """The name of the cluster's (first) node."""
    return str(json.loads(p.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]["metadata"]["name"])


def endpoint_slice(service: str, ip: str, port: int, node: str) -> str:
    """A hand-written EndpointSlice of the selector-less Service `service`: one ready endpoint
    `ip` (port `port`, unnamed) that says it runs on the node `node`."""
    return json.dumps({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"{service}-1", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4", "ports": [{"name": "", "port": port, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "nodeName": node}]})


DB = {"selector": {"app": "db"}, "ports": [{"name": "pg", "port": 6000, "targetPort": "pg"}]}


def test_node_port_on_localhost_spreads_and_closes(cluster: Podns) -> None:
    """given a NodePort Service over np-0 and np-1, connections to 127.0.0.1:<nodePort> reach
    both (as the ClusterIP does); a UDP NodePort Service answers datagrams from the echo pod;
    once the TCP Service's type is ClusterIP, the node port refuses connections."""
    port = node_port_service(cluster, "db-np", DB, lambda p: answer("127.0.0.1", p).startswith("np-"))
    wait(lambda: {answer("127.0.0.1", port) for _ in range(12)} == {"np-0", "np-1"},
         what="both pods behind 127.0.0.1:<nodePort>")
    udp = {"selector": {"app": "echo"}, "ports": [{"name": "dns", "port": 53, "targetPort": "dns",
                                                  "protocol": "UDP"}]}
    node_port_service(cluster, "echo-np", udp, lambda p: udp_ask("127.0.0.1", p, b"hi") == b"echo:hi")
    patched = cluster.kubectl("patch", "svc", "db-np", "-p", '{"spec": {"type": "ClusterIP"}}')
    assert patched.returncode == 0, patched.stderr
    wait(lambda: answer("127.0.0.1", port) == "ConnectionRefusedError", what="the node port closed")


def test_node_port_held_elsewhere_is_reported_then_served(cluster: Podns, tmp_path: Path) -> None:
    """given a port of the range that this test holds on 127.0.0.1, a Service asking for it as
    its nodePort is created, and the agent says it cannot listen there (Warning Event
    FailedToBindNodePort naming the address, and the log) while ClusterIPs keep being served;
    once the port is free and the Service changes, the node port serves."""
    holder = socket.socket()
    port = 0
    services = json.loads(cluster.kubectl("get", "svc", "-o", "json").stdout)["items"]
    allocated = {p.get("nodePort") for s in services for p in s["spec"].get("ports") or []}
    for candidate in random.sample(range(NODE_PORTS[0], NODE_PORTS[1] + 1), 100):
        if candidate in allocated:
            continue
        try:
            holder.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        port = candidate
        break
    assert port, "every port of the window is held"
    holder.listen()
    try:
        spec = {**DB, "ports": [{"name": "pg", "port": 6000, "targetPort": "pg", "nodePort": port}]}
        apply(cluster, json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "held"},
                                   "spec": {"type": "NodePort", **spec}}))
        [message] = wait(lambda: events_of(cluster, "held", "FailedToBindNodePort"),
                         what="the FailedToBindNodePort event")
        assert f"127.0.0.1:{port}/TCP" in message and "another process holds the port" in message, message
        assert f"cannot listen on 127.0.0.1:{port}/TCP" in cluster.log()
        ip = get(cluster, "svc", "held")["spec"]["clusterIP"]
        wait(lambda: answer(ip, 6000).startswith("np-"), what="the ClusterIP still served")
    finally:
        holder.close()
    labelled = cluster.kubectl("label", "svc", "held", "touched=yes")
    assert labelled.returncode == 0, labelled.stderr
    wait(lambda: answer("127.0.0.1", port).startswith("np-"), what="the node port served once free")


def test_traffic_policies_follow_node_name(cluster: Podns) -> None:
    """given a selector-less LoadBalancer Service with internalTrafficPolicy and
    externalTrafficPolicy Local whose hand-written EndpointSlice puts np-0's address on another
    node: its ClusterIP refuses (no endpoint on this node), while its node port still serves
    clients on the node itself (kube-proxy's short-circuit), and its health check node port
    answers 503; once the slice says this node, the ClusterIP serves too and the health check
    answers 200 with kube-proxy's body."""
    node = node_name(cluster)
    np0 = ready_ip(cluster, "np-0")
    assert np0
    apply(cluster, endpoint_slice("far", np0, 5432, "elsewhere"))
    spec = {"type": "LoadBalancer", "internalTrafficPolicy": "Local", "externalTrafficPolicy": "Local",
            "ports": [{"port": 6001, "targetPort": 5432}]}
    port = node_port_service(cluster, "far", spec, lambda p: answer("127.0.0.1", p) == "np-0")
    svc = get(cluster, "svc", "far")["spec"]
    ip, health = svc["clusterIP"], int(svc["healthCheckNodePort"])
    assert NODE_PORTS[0] <= health <= NODE_PORTS[1] and health != port
    assert answer(ip, 6001) == "closed", "internalTrafficPolicy Local without a local endpoint"
    assert answer("127.0.0.1", port) == "np-0"
    assert wait(lambda: health_check(health), what="the health check node port answers")[0] == 503
    apply(cluster, endpoint_slice("far", np0, 5432, node))
    wait(lambda: answer(ip, 6001) == "np-0", what="the ClusterIP served by the endpoint of this node")
    _, body = wait(lambda: health_check(health) if health_check(health)[0] == 200 else None,
                   what="the health check says 200 with the endpoint here")
    assert body == {"service": {"namespace": "default", "name": "far"}, "localEndpoints": 1,
                    "serviceProxyHealthy": True}


def health_check(port: int) -> tuple[int, dict]:
    """GET http://127.0.0.1:<port>/healthz: (status, JSON body), or (0, {}) when not served."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return 0, {}
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        return 0, {}
    return int(head.split()[1]), dict(json.loads(body))
