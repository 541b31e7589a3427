"""Create-on-update: a PUT on a missing object creates it (201) for the kinds kube-apiserver
allows it for (`AllowCreateOnUpdate`: Services, Endpoints, Events, Leases) and is a 404 for
every other kind, on subresources, and when the body names a resourceVersion."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from podns.api.resources.registry import REGISTRY

from .conftest import Api, serve

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def kapi(tmp_path: Path) -> AsyncIterator[Api]:
    """The API server with the real served kinds."""
    async with serve(tmp_path, types=list(REGISTRY)) as a:
        yield a


LEASE = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
         "metadata": {"name": "lock"}, "spec": {"holderIdentity": "me"}}
EVENT = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ev1"},
         "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
         "reason": "Started", "message": "hello", "type": "Normal"}
ENDPOINTS = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ep"},
             "subsets": [{"addresses": [{"ip": "127.0.0.5"}], "ports": [{"port": 80}]}]}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
           "spec": {"clusterIP": "None", "selector": {"app": "a"}, "ports": [{"port": 80}]}}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
             "data": {"a": "b"}}
SA = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}
NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}


@pytest.mark.parametrize("path,body", [
    ("/apis/coordination.k8s.io/v1/namespaces/default/leases/lock", LEASE),
    ("/api/v1/namespaces/default/events/ev1", EVENT),
    ("/api/v1/namespaces/default/endpoints/ep", ENDPOINTS),
    ("/api/v1/namespaces/default/services/svc", SERVICE),
])
async def test_put_creates_missing_object_of_allowed_kinds(kapi: Api, path: str,
                                                           body: dict) -> None:
    r = await kapi.put(path, body)
    assert r.status == 201, r.body
    assert r.body["metadata"]["uid"] and r.body["metadata"]["resourceVersion"]
    assert r.body["metadata"]["namespace"] == "default"
    got = await kapi.get(path)
    assert got.status == 200 and got.body["metadata"]["uid"] == r.body["metadata"]["uid"]
    # a second PUT is an ordinary update: 200, same uid
    again = await kapi.put(path, got.body)
    assert again.status == 200, again.body
    assert again.body["metadata"]["uid"] == r.body["metadata"]["uid"]


@pytest.mark.parametrize("path,body", [
    ("/api/v1/namespaces/default/configmaps/cm", CONFIGMAP),
    ("/api/v1/namespaces/default/serviceaccounts/sa", SA),
    ("/api/v1/nodes/n1", NODE),
])
async def test_put_on_missing_object_of_other_kinds_is_404(kapi: Api, path: str,
                                                           body: dict) -> None:
    r = await kapi.put(path, body)
    assert r.status == 404, r.body
    assert r.body["kind"] == "Status" and r.body["reason"] == "NotFound"
    assert (await kapi.get(path)).status == 404


async def test_create_on_update_rules(kapi: Api) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases/lock"
    # a resourceVersion names a version of an object that does not exist: 404, nothing created
    stale = {**LEASE, "metadata": {"name": "lock", "resourceVersion": "5"}}
    assert (await kapi.put(path, stale)).status == 404
    # the name in the body must match the URL's
    other = {**LEASE, "metadata": {"name": "other"}}
    r = await kapi.put(path, other)
    assert r.status == 400 and r.body["reason"] == "BadRequest"
    # the status subresource never creates
    r = await kapi.put("/api/v1/namespaces/default/services/svc/status", SERVICE)
    assert r.status == 404
    # invalid objects are refused as on create
    bad = {**LEASE, "spec": {"leaseDurationSeconds": -1}}
    assert (await kapi.put(path, bad)).status == 422
    # a missing namespace is a 404 for the namespace
    r = await kapi.put("/apis/coordination.k8s.io/v1/namespaces/nope/leases/lock", LEASE)
    assert r.status == 404 and r.body["details"]["kind"] == "namespaces"
    # dryRun stores nothing
    r = await kapi.put(path + "?dryRun=All", LEASE)
    assert r.status == 201
    assert (await kapi.get(path)).status == 404
    assert (await kapi.put(path, LEASE)).status == 201
