"""Health check node ports (`podns.node.proxy.healthcheck`): which Services get one and what it
answers (kube-proxy's status, header and JSON body), served on a real loopback socket; a port
some other socket holds is reported, not raised, and served once free."""

from __future__ import annotations

import asyncio
import json
import random
import socket
from typing import Any

from podns.node.proxy.healthcheck import HealthCheck, HealthServer, health_checks

Obj = dict[str, Any]


def lb(name: str, policy: str = "Local", port: int = 31000, stype: str = "LoadBalancer") -> Obj:
    return {"metadata": {"namespace": "shop", "name": name},
            "spec": {"type": stype, "externalTrafficPolicy": policy, "healthCheckNodePort": port,
                     "ports": [{"name": "http", "port": 80}, {"name": "alt", "port": 81}]}}


def slice_of(*endpoints: tuple[str, str, bool]) -> Obj:
    return {"ports": [{"name": "http", "port": 8080}, {"name": "alt", "port": 8081}],
            "endpoints": [{"addresses": [ip], "nodeName": node, "conditions": {"ready": ready}}
                          for ip, node, ready in endpoints]}


def test_health_checks_count_ready_local_endpoints() -> None:
    """given LoadBalancers with Local and Cluster policies and a NodePort with Local, only the
    first gets a check; it counts this node's ready endpoints once per address (two ports each)."""
    slices = {"web": [slice_of(("10.244.0.2", "n1", True), ("10.244.0.3", "n1", False),
                               ("10.244.1.2", "n2", True))]}
    checks = health_checks([lb("web"), lb("cl", "Cluster", 31001), lb("np", port=31002, stype="NodePort")],
                           lambda svc: slices.get(svc["metadata"]["name"], []), "n1")
    assert checks == {31000: HealthCheck("shop", "web", 1)}
    elsewhere = health_checks([lb("web")], lambda svc: slices["web"], "n3")
    assert elsewhere == {31000: HealthCheck("shop", "web", 0)}


def ask(port: int) -> tuple[str, dict[str, str], Obj]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], headers, json.loads(body)


def test_server_answers_follow_sync_and_report_held_ports() -> None:
    """given a port of its own, the server answers 200 with one local endpoint, then 503 with
    none after a sync, and closes the port when the Service is gone; a port another socket
    holds is reported to on_unbindable and served at the next sync once free."""
    async def run() -> None:
        said: list[tuple[str, int]] = []
        server = HealthServer(["127.0.0.1"], on_unbindable=lambda c, a, p, e: said.append((a, p)))
        port = 0
        for candidate in random.sample(range(20000, 30000), 50):
            await server.sync({candidate: HealthCheck("shop", "web", 1)})
            if (candidate, "127.0.0.1") in server.servers:
                port = candidate
                break
        assert port, "no free port for the test"
        status, headers, body = await asyncio.to_thread(ask, port)
        assert status == "HTTP/1.1 200 OK" and headers["X-Load-Balancing-Endpoint-Weight"] == "1"
        assert body == {"service": {"namespace": "shop", "name": "web"}, "localEndpoints": 1,
                        "serviceProxyHealthy": True}
        await server.sync({port: HealthCheck("shop", "web", 0)})
        status, _, body = await asyncio.to_thread(ask, port)
        assert status == "HTTP/1.1 503 Service Unavailable" and body["localEndpoints"] == 0
        await server.sync({})
        try:
            await asyncio.to_thread(ask, port)
            raise AssertionError("still served")
        except ConnectionRefusedError:
            pass
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        await server.sync({held: HealthCheck("shop", "web", 2)})
        assert said == [("127.0.0.1", held)]
        holder.close()
        await server.sync({held: HealthCheck("shop", "web", 2)})
        status, _, _ = await asyncio.to_thread(ask, held)
        assert status == "HTTP/1.1 200 OK"
        await server.stop()
    asyncio.run(run())
