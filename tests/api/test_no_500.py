"""Robustness: mutated bodies against the real served kinds never get a 500 or a non-Status.

Valid objects of each kind are mutated at random (a subtree replaced by a value of another
type, a field deleted, an unknown field added) with a fixed seed, and sent as create, update
and each patch flavour. Every answer must be a success or a 4xx Status; the store must still
serve the kind afterwards.
"""

from __future__ import annotations

import copy
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from podns.api.server.apiserver import ApiServer
from podns.store.sqlite import SQLiteStore

from .conftest import Api

SEED = 20261126
ROUNDS = 60

SAMPLES: dict[str, dict[str, Any]] = {
    "/api/v1/namespaces/default/pods": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "db"}},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "1"],
                                 "ports": [{"name": "pg", "containerPort": 5432}],
                                 "env": [{"name": "IP", "valueFrom": {"fieldRef": {
                                     "fieldPath": "status.podIP"}}}],
                                 "readinessProbe": {"tcpSocket": {"port": "pg"}}}]}},
    "/api/v1/namespaces/default/services": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"},
                 "ports": [{"name": "pg", "port": 5432, "targetPort": "pg"}]}},
    "/apis/apps/v1/namespaces/default/statefulsets": {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "s", "replicas": 2,
                 "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
    "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "e", "labels": {"kubernetes.io/service-name": "s"}},
        "addressType": "IPv4", "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": True},
                       "hostname": "db-0"}]},
}

WEIRD: list[Any] = [None, 0, -1, 2**40, 1.5, True, "", "x" * 300, "Bad Name!", [], [1, "a"],
                    {}, {"a": {"b": None}}, {"$patch": "delete"}, {"$patch": "bogus"}]


def mutate(obj: Any, rng: random.Random) -> Any:
    """Replace, delete or add one random field somewhere in `obj`."""
    obj = copy.deepcopy(obj)
    paths: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k in node:
                paths.append((node, k))
                walk(node[k])
        elif isinstance(node, list):
            for i in range(len(node)):
                paths.append((node, i))
                walk(node[i])

    walk(obj)
    parent, key = rng.choice(paths)
    action = rng.random()
    if action < 0.6:
        parent[key] = rng.choice(WEIRD)
    elif action < 0.8 and isinstance(parent, dict):
        del parent[key]
    elif isinstance(parent, dict):
        parent[f"bogus{rng.randint(0, 9)}"] = rng.choice(WEIRD)
    return obj


@pytest.fixture
async def real_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The in-process server with the real registry of kinds."""
    store = SQLiteStore(tmp_path / "podns.db")
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False)
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield Api(server, session)
    await server.stop()
    await store.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("collection", list(SAMPLES), ids=lambda c: c.rsplit("/", 1)[1])
async def test_mutated_bodies_never_500(real_api: Api, collection: str) -> None:
    """Given random mutations of a valid object, every verb answers 2xx or a 4xx Status."""
    rng = random.Random(SEED)
    sample = SAMPLES[collection]
    name = sample["metadata"]["name"]
    r = await real_api.post(collection, sample)
    assert r.status == 201, r.body
    ptypes = ["merge", "strategic", "apply", "json"]
    for i in range(ROUNDS):
        body = mutate(sample, rng)
        checks = [await real_api.post(collection, body),
                  await real_api.put(f"{collection}/{name}", body)]
        ptype = ptypes[i % 4]
        patch_body: Any = body
        if ptype == "json":
            patch_body = [{"op": rng.choice(["add", "replace", "remove", "test"]),
                           "path": rng.choice(["/spec", "/metadata/labels/x", "/x/y", "",
                                               "/spec/ports/0"]),
                           "value": rng.choice(WEIRD)}]
        checks.append(await real_api.patch(f"{collection}/{name}?fieldManager=fuzz",
                                           patch_body, ptype))
        for resp in checks:
            assert resp.status < 500, (resp.status, resp.body, body)
            if resp.status >= 400:
                assert isinstance(resp.body, dict) and resp.body.get("kind") == "Status", \
                    resp.body
                assert resp.body["code"] == resp.status
    assert (await real_api.get(collection)).status == 200
