"""Per kind: the same object POSTed as JSON and as protobuf is stored identically.

A real `ApiServer` (every served kind, real strategies) over a real SQLite store, plain HTTP on
loopback. For each kind, the object a Go client would send is POSTed twice, once as JSON and
once as a protobuf body, under two names; the two stored objects must be equal but for
identity (name, uid, resourceVersion, timestamps) and allocations (cluster IPs, node ports).
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from podns.api.encoding import protobuf
from podns.api.server.apiserver import ApiServer
from podns.store.sqlite import SQLiteStore

from .test_protobuf_kinds import OBJECTS

#: kind -> collection path (namespaced kinds in "default")
PATHS = {
    "Namespace": "/api/v1/namespaces",
    "Node": "/api/v1/nodes",
    "Service": "/api/v1/namespaces/default/services",
    "Pod": "/api/v1/namespaces/default/pods",
    "Event": "/api/v1/namespaces/default/events",
    "Endpoints": "/api/v1/namespaces/default/endpoints",
    "ConfigMap": "/api/v1/namespaces/default/configmaps",
    "Secret": "/api/v1/namespaces/default/secrets",
    "PersistentVolumeClaim": "/api/v1/namespaces/default/persistentvolumeclaims",
    "ServiceAccount": "/api/v1/namespaces/default/serviceaccounts",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
    "StatefulSet": "/apis/apps/v1/namespaces/default/statefulsets",
    "ControllerRevision": "/apis/apps/v1/namespaces/default/controllerrevisions",
    "Lease": "/apis/coordination.k8s.io/v1/namespaces/default/leases",
}
#: what legitimately differs between two creations of the same object
IDENTITY = ("name", "uid", "resourceVersion", "creationTimestamp", "managedFields", "selfLink")


class Client:
    def __init__(self, server: ApiServer, session: aiohttp.ClientSession) -> None:
        assert server.tokens is not None
        self.base = server.url
        self.session = session
        self.auth = {"Authorization": f"Bearer {server.tokens.admin}"}

    async def call(self, method: str, path: str, data: bytes | None = None,
                   content_type: str = "application/json") -> tuple[int, Any]:
        headers = dict(self.auth, **({"Content-Type": content_type} if data is not None else {}))
        async with self.session.request(method, self.base + path, data=data, headers=headers) as r:
            return r.status, orjson.loads(await r.read())


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    store = SQLiteStore(tmp_path / "podns.db")
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False)
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield Client(server, session)
    await server.stop()
    await store.close()


def creatable(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """The object as a Go client would send it on create (Go's JSON form), named `name`."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    for key in ("uid", "resourceVersion", "generation", "creationTimestamp", "ownerReferences"):
        meta.pop(key, None)
    meta["name"] = name
    if obj["kind"] in ("Namespace", "Node"):
        meta.pop("namespace", None)
    else:
        meta["namespace"] = "default"
    return protobuf.decode(protobuf.encode(obj))


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without identity and allocations; its own name in labels made generic."""
    obj = copy.deepcopy(obj)
    name = obj["metadata"]["name"]
    for key in IDENTITY:
        obj["metadata"].pop(key, None)
    labels = obj["metadata"].get("labels") or {}
    for key, value in labels.items():
        if value == name:
            labels[key] = "<name>"
    spec = obj.get("spec") or {}
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    for port in spec.get("ports") or []:
        port.pop("nodePort", None)
    return obj


SERVED = [(kind, obj) for kind, obj in OBJECTS if kind in PATHS]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("obj", [o for _k, o in SERVED], ids=[k for k, _o in SERVED])
async def test_json_and_protobuf_store_the_same(client: Client, obj: dict[str, Any]) -> None:
    """Given one object of a served kind, when it is created once from a JSON body and once
    from a protobuf body, then the server stores the same object both times."""
    path = PATHS[obj["kind"]]
    suffix = "-pb" if obj["kind"] != "Node" else ".pb"
    via_json = creatable(obj, "via-json" if obj["kind"] != "Node" else "via.json")
    via_pb = creatable(obj, "via" + suffix)
    code, stored_json = await client.call("POST", path, orjson.dumps(via_json))
    assert code == 201, stored_json
    code, stored_pb = await client.call("POST", path, protobuf.encode(via_pb), protobuf.PROTOBUF)
    assert code == 201, stored_pb
    assert stored_pb["metadata"]["name"] == via_pb["metadata"]["name"]
    assert comparable(stored_pb) == comparable(stored_json)
    code, got = await client.call("GET", f"{path}/{via_pb['metadata']['name']}")
    assert code == 200 and comparable(got) == comparable(stored_json)


@pytest.mark.timeout(30)
async def test_protobuf_put_updates(client: Client) -> None:
    """Given a ConfigMap, when it is replaced with a protobuf PUT carrying its resourceVersion,
    then the update is stored; a stale resourceVersion is 409 Conflict, as with JSON."""
    path = PATHS["ConfigMap"]
    code, cm = await client.call("POST", path, orjson.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}))
    assert code == 201
    cm["data"] = {"a": "2"}
    code, updated = await client.call("PUT", f"{path}/c", protobuf.encode(cm), protobuf.PROTOBUF)
    assert (code, updated["data"]) == (200, {"a": "2"}), updated
    code, stale = await client.call("PUT", f"{path}/c", protobuf.encode(cm), protobuf.PROTOBUF)
    assert (code, stale["reason"]) == (409, "Conflict")
