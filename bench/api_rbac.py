"""RBAC's cost: requests/s and latency of the same request through the admin path
(`system:masters`, no rule consulted) and through RBAC (a ServiceAccount bound by a RoleBinding,
the read-only user bound to `view`), and of a node agent's identity (a client certificate,
decided by the Node authorizer's rules), with a few hundred bindings in the store, side by side in
one run against one real `podns apiserver` process (HTTPS, SQLite).

Rounds alternate between the three identities (median of `--rounds`); each round runs
`--concurrency` clients for `--seconds` issuing GET of one pod. The ServiceAccount path is the
admin token with `Impersonate-User` (itself an authorization: system:masters, no rule), so it
pays RBAC once for the impersonated user. A last figure is the authorizer alone, in process:
microseconds per `authorize()` over the same bindings (the node's decision is not cached: it
depends on the pod graph, not only on the RBAC index).

Usage: .venv/bin/python bench/api_rbac.py [--bindings 300] [--concurrency 8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _common import pct
from api_throughput import Server

from podns.api.handlers import rbacpolicy
from podns.api.handlers.authorization import Attributes, Authorizer, RuleIndex, UserInfo
from podns.api.handlers.nodeauthorizer import NodeAuthorizer
from podns.api.server import certs
from podns.store.memory import MemoryStore

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC = f"/apis/{RBAC_GROUP}/v1"
POD = "/api/v1/namespaces/default/pods/p0"
SA = "system:serviceaccount:default:bench"


def binding(i: int, kind: str, ref: str, ns: str | None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": f"b{i}"}
    if ns:
        md["namespace"] = ns
    return {"apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding" if ns else "ClusterRoleBinding", "metadata": md,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ref},
            "subjects": [{"kind": "User", "name": f"user-{i}", "apiGroup": RBAC_GROUP},
                         {"kind": "Group", "name": f"group-{i % 20}", "apiGroup": RBAC_GROUP},
                         {"kind": "ServiceAccount", "name": f"sa-{i}", "namespace": ns or "default"}]}


def objects(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """`n` bindings: 3/4 RoleBindings over 10 namespaces, 1/4 ClusterRoleBindings to `view`,
    plus the Role and RoleBinding that let the bench ServiceAccount read pods."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "pod-reader", "namespace": "default"},
            "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]}
    rbs, crbs = [], []
    for i in range(n):
        if i % 4 == 3:
            crbs.append(binding(i, "ClusterRole", "view", None))
        else:
            rbs.append(binding(i, "Role", "pod-reader", "default" if i % 10 == 0 else f"ns{i % 10}"))
    mine = binding(n, "Role", "pod-reader", "default")
    mine["subjects"] = [{"kind": "ServiceAccount", "name": "bench", "namespace": "default"}]
    rbs.append(mine)
    return [role], rbs, crbs


async def load(http: _Admin, n: int) -> None:
    roles, rbs, crbs = objects(n)
    for ns in ["default", *(f"ns{i}" for i in range(1, 10))]:
        await http.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
    await http.post("/api/v1/namespaces/default/pods", json={
        "metadata": {"name": "p0"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    for r in roles:
        assert (await http.post(f"{RBAC}/namespaces/default/roles", json=r)).status == 201
    for b in rbs:
        ns = b["metadata"]["namespace"]
        assert (await http.post(f"{RBAC}/namespaces/{ns}/rolebindings", json=b)).status == 201
    for b in crbs:
        assert (await http.post(f"{RBAC}/clusterrolebindings", json=b)).status == 201


NODE = UserInfo("system:node:bench", ("system:nodes", "system:authenticated"))


async def round_(http: aiohttp.ClientSession, headers: dict[str, str], concurrency: int,
                 seconds: float) -> tuple[float, list[float]]:
    lat: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with http.get(POD, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(lat) / (time.perf_counter() - start), lat


def in_process(n: int, calls: int = 100_000) -> dict[str, float]:
    """µs per authorize() for the three identities over the same objects plus the defaults."""
    roles, rbs, crbs = objects(n)
    index = RuleIndex.build(roles, rbacpolicy.CLUSTER_ROLES, rbs, crbs + rbacpolicy.CLUSTER_ROLE_BINDINGS)
    store = MemoryStore()
    authz = Authorizer(store)  # never started: the index is set directly
    authz.set_index(index)
    authz.front = NodeAuthorizer(store)
    who = {"admin": UserInfo("admin", ("system:masters", "system:authenticated")),
           "serviceaccount": UserInfo(SA, ("system:serviceaccounts", "system:serviceaccounts:default",
                                           "system:authenticated")),
           "readonly": UserInfo("readonly", ("system:authenticated",)),
           "node": NODE}
    out = {}
    for name, user in who.items():
        a = Attributes(user, "get", namespace="default", resource="pods", name="p0")
        assert authz.authorize(a)
        t0 = time.perf_counter()
        for _ in range(calls):
            authz.authorize(a)
        # a node's decision is never cached (it follows the pod graph): its figure is the Node
        # authorizer's graph check and static rules every time
        out[f"{name} ({'Node authorizer' if name == 'node' else 'cached'})"] = (
            (time.perf_counter() - t0) / calls * 1e6)
        if name not in ("admin", "node"):
            t0 = time.perf_counter()
            for _ in range(calls):
                index.allows(a)
            out[f"{name} (index)"] = (time.perf_counter() - t0) / calls * 1e6
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindings", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    server = Server(None)
    try:
        await server.ready()
        readonly = json.loads((server.dir / "tokens.json").read_text())["readonly"]
        conn = aiohttp.TCPConnector(ssl=server.ssl, limit=args.concurrency + 4)
        admin = {"Authorization": f"Bearer {server.token}"}
        async with aiohttp.ClientSession(server.url, connector=conn) as http:
            await load(_Admin(http, admin), args.bindings)
            await asyncio.sleep(0.5)  # the authorizer's watch catches up
            paths = {"readonly via view": {"Authorization": f"Bearer {readonly}"},
                     "admin (system:masters)": admin,
                     "serviceaccount via RoleBinding": {**admin, "Impersonate-User": SA}}
            results: dict[str, list[tuple[float, list[float]]]] = {k: [] for k in paths}
            node_path = "node (client cert, Node authorizer)"
            results[node_path] = []
            # a node agent's identity: a client certificate from the cluster CA, no token
            node_tls = ssl.create_default_context(cafile=str(server.dir / "ca.crt"))
            cert, key = certs.issue_client(server.dir, user=NODE.name, groups=NODE.groups[:1])
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / "node.pem").write_bytes(cert + key)
                node_tls.load_cert_chain(str(Path(tmp) / "node.pem"))
            node_conn = aiohttp.TCPConnector(ssl=node_tls, limit=args.concurrency + 4)
            async with aiohttp.ClientSession(server.url, connector=node_conn) as node_http:
                await round_(http, admin, args.concurrency, 1.0)  # warm-up
                for _ in range(args.rounds):
                    for name, headers in paths.items():
                        results[name].append(await round_(http, headers, args.concurrency, args.seconds))
                    results[node_path].append(await round_(node_http, {}, args.concurrency, args.seconds))
    finally:
        server.stop()
    print(f"GET one pod, {args.concurrency} clients, {args.rounds} x {args.seconds:g} s rounds, "
          f"{args.bindings} bindings in the store (median of rounds)")
    print(f"{'identity':34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, rs in results.items():
        rps = statistics.median(r for r, _ in rs)
        p50 = statistics.median(pct(lat, 0.5) for _, lat in rs) * 1e3
        p99 = statistics.median(pct(lat, 0.99) for _, lat in rs) * 1e3
        print(f"{name:34} {rps:8.0f} {p50:8.2f} {p99:8.2f}")
    print("authorize() alone, µs per call:",
          ", ".join(f"{k} {v:.2f}" for k, v in in_process(args.bindings).items()))


class _Admin:
    """POSTs with the admin token over the bench's session."""

    def __init__(self, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
        self.http, self.headers = http, headers

    async def post(self, path: str, json: Any) -> aiohttp.ClientResponse:
        async with self.http.post(path, json=json, headers=self.headers) as r:
            await r.read()
            return r


if __name__ == "__main__":
    asyncio.run(main())
