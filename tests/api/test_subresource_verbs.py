"""Subresources serve only their own verbs: PUT or PATCH on `pods/x/eviction`,
`pods/x/binding` or `serviceaccounts/x/token` is a 405 MethodNotAllowed (as kube-apiserver
answers), and the parent object is left exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api

NS = "/api/v1/namespaces/default"


@pytest.fixture
async def objects(real_api: Api) -> Api:
    for path, body in ((f"{NS}/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                                       "spec": {"containers": [{"name": "c", "image": "x"}]}}),
                       (f"{NS}/serviceaccounts", {"apiVersion": "v1", "kind": "ServiceAccount",
                                                  "metadata": {"name": "sa"}})):
        r = await real_api.post(path, body)
        assert r.status == 201, r.body
    return real_api


WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("pods/p/eviction", "/pods/p", {"apiVersion": "policy/v1", "kind": "Eviction",
                                    "metadata": {"name": "p"}}),
    ("pods/p/binding", "/pods/p", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                                   "target": {"kind": "Node", "name": "n"}}),
    ("serviceaccounts/sa/token", "/serviceaccounts/sa",
     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}),
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(("sub", "parent", "body"), WRITES, ids=[w[0] for w in WRITES])
async def test_update_verbs_on_create_only_subresources_are_405(
        objects: Api, method: str, sub: str, parent: str, body: dict[str, Any]) -> None:
    """given a create-only subresource, when a client PUTs or PATCHes it, then the answer is a 405
    Status and the parent object (resourceVersion, spec) is unchanged."""
    before = await objects.get(NS + parent)
    assert before.status == 200
    if method == "PUT":
        r = await objects.put(f"{NS}/{sub}", body)
    else:
        r = await objects.patch(f"{NS}/{sub}", body)
    assert r.status == 405, r.body
    assert r.body["kind"] == "Status" and r.body["reason"] == "MethodNotAllowed"
    after = await objects.get(NS + parent)
    assert after.body == before.body


@pytest.mark.parametrize("sub", ["pods/p/eviction", "pods/p/binding", "serviceaccounts/sa/token"])
async def test_get_on_create_only_subresources_is_405(objects: Api, sub: str) -> None:
    """given a create-only subresource, a GET is a 405 (it has nothing to read)."""
    r = await objects.get(f"{NS}/{sub}")
    assert r.status == 405, r.body


async def test_served_subresource_verbs_still_work(objects: Api) -> None:
    """the check keeps what each subresource serves: GET/PUT/PATCH status, POST binding."""
    assert (await objects.get(f"{NS}/pods/p/status")).status == 200
    r = await objects.patch(f"{NS}/pods/p/status", {"status": {"message": "m"}})
    assert r.status == 200, r.body
    r = await objects.post(f"{NS}/pods/p/binding", WRITES[1][2])
    assert r.status == 201, r.body

