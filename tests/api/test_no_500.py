"""Robustness: mutated bodies against the real served kinds never get a 500 or a non-Status.

Valid objects of each kind are mutated at random (a subtree replaced by a value of another
type, a field deleted, an unknown field added) with a fixed seed, and sent as create, update
and each patch flavour. Every answer must be a success or a 4xx Status; the store must still
serve the kind afterwards.
"""

from __future__ import annotations

import asyncio
import copy
import random
from typing import Any

import orjson
import pytest

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


# -- YAML bodies and headers ----------------------------------------------------------------------

#: a 10-level "billion laughs": 10^10 nodes once expanded, a few hundred bytes on the wire
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9))

YAML_BODIES = {
    "alias-bomb": (ALIAS_BOMB, "excessive aliasing"),
    "int-key": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata: {1: one}\n", "not a string"),
    "null-key": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k, labels: {~: x}}\n", "not a string"),
    "bool-key": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k}\ndata: {yes: 1}\n", "not a string"),
    "list-key": ("apiVersion: v1\nkind: ConfigMap\n? [a, b]\n: c\n", ""),
    "deep": ("[" * 5000 + "]" * 5000, ""),
}


@pytest.mark.parametrize("case", list(YAML_BODIES))
async def test_bad_yaml_bodies_are_400(real_api: Api, case: str) -> None:
    """given a YAML body with an alias bomb, non-string mapping keys or absurd nesting, create
    and apply answer 400 with a Status, promptly (no 500, no expansion into memory)."""
    text, words = YAML_BODIES[case]
    for method, path, ct in (
            ("POST", "/api/v1/namespaces/default/configmaps", "application/yaml"),
            ("PATCH", "/api/v1/namespaces/default/configmaps/k?fieldManager=t",
             "application/apply-patch+yaml")):
        r = await real_api.call(method, path, raw=text.encode(), content_type=ct)
        assert r.status == 400, (method, r.status, r.body)
        assert r.body["kind"] == "Status" and words in r.body["message"], r.body


async def test_yaml_aliases_within_the_budget_and_timestamps_work(real_api: Api) -> None:
    """given a YAML body with a few aliases and an unquoted date, the object is created: the
    date stays the string it was written as, the aliased labels are copied."""
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n  labels: &l {app: db}\n"
            "  annotations: *l\ndata:\n  since: 2026-12-06\n")
    r = await real_api.call("POST", "/api/v1/namespaces/default/configmaps", raw=text.encode(),
                            content_type="application/yaml")
    assert r.status == 201, r.body
    assert r.body["data"] == {"since": "2026-12-06"} and r.body["metadata"]["annotations"] == {"app": "db"}


async def _raw_request(real_api: Api, head: bytes) -> tuple[int, bytes]:
    """Send `head` (request line and headers, bytes as they are) and read the status and body."""
    host, port = real_api.server.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"Connection: close\r\n\r\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = reply.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("token", [b"\xff\xfe", b"caf\xc3", b"\x80abc"],
                         ids=["ff-fe", "cut-utf8", "continuation"])
async def test_non_utf8_bearer_token_is_401(real_api: Api, token: bytes) -> None:
    """given an Authorization header whose token is not valid UTF-8, the answer is 401 with a
    Status (not a 500 and a traceback per request)."""
    status, body = await _raw_request(
        real_api, b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n")
    assert status == 401, body
    assert orjson.loads(body)["kind"] == "Status"


HEADERS: list[dict[str, str]] = [
    {"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io, */*"},
    {"Accept": ";;;=,,as=Table"},
    {"Accept": "application/vnd.kubernetes.protobuf;stream=watch"},
    {"Content-Type": "application/yaml; charset=ebcdic"},
    {"Content-Type": ";"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"Content-Encoding": "gzip"},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Basic Zm9vOmJhcg=="},
    {"Impersonate-User": "system:admin"},
]


@pytest.mark.parametrize("headers", HEADERS, ids=[next(iter(h.items()))[1][:20] for h in HEADERS])
async def test_odd_headers_never_500(real_api: Api, headers: dict[str, str]) -> None:
    """given odd Accept, Content-Type, Content-Encoding, Authorization headers, every verb
    answers 2xx or a 4xx Status."""
    token = None if "Authorization" in headers else "admin"
    body = orjson.dumps({"metadata": {"name": "h"}, "data": {}})
    for method, path in (("GET", "/api/v1/namespaces/default/configmaps"),
                         ("POST", "/api/v1/namespaces/default/configmaps"),
                         ("PATCH", "/api/v1/namespaces/default/configmaps/h")):
        # one connection per request: after a body it could not read the server closes the
        # connection (aiohttp), which a pooled client would only notice on its next request
        hdrs = {k: v for k, v in headers.items() if k != "Content-Type"} | {"Connection": "close"}
        r = await real_api.call(method, path, raw=body if method != "GET" else None, token=token,
                                content_type=headers.get("Content-Type", "application/json"), headers=hdrs)
        assert r.status < 500, (method, headers, r.status, r.body)
        if r.status >= 400:
            assert isinstance(r.body, dict) and r.body.get("kind") == "Status", r.body
