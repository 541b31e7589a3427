"""OpenAPI: the v3 index and documents kubectl's field-validation check and explain read,
and the hand-encoded protobuf v2 document, decoded here with a minimal protobuf reader."""

from __future__ import annotations

import json
from typing import Any

import yaml

from podns.api.discovery import openapi
from podns.api.resources.registry import REGISTRY


def test_v3_index_lists_every_group_version() -> None:
    """Given /openapi/v3, then every served group-version has a URL with a hash."""
    body, ctype = openapi.handle("/openapi/v3", {}, "application/json")
    index = json.loads(body)
    assert ctype == "application/json"
    assert set(index["paths"]) == {"api/v1", "apis/apps/v1", "apis/batch/v1", "apis/policy/v1",
                                   "apis/coordination.k8s.io/v1", "apis/discovery.k8s.io/v1",
                                   "apis/authentication.k8s.io/v1", "apis/authorization.k8s.io/v1",
                                   # SelfSubjectReview for kubectl 1.27's `auth whoami`
                                   "apis/authentication.k8s.io/v1beta1",
                                   "apis/authentication.k8s.io/v1alpha1",
                                   "apis/rbac.authorization.k8s.io/v1", "apis/node.k8s.io/v1",
                                   "apis/autoscaling/v2", "apis/autoscaling/v1",
                                   "apis/networking.k8s.io/v1"}
    assert index["paths"]["apis/apps/v1"]["serverRelativeURL"].startswith("/openapi/v3/apis/apps/v1?hash=")


def test_every_kind_has_a_patch_with_field_validation() -> None:
    """For each served kind, some PATCH operation carries its GVK and a fieldValidation query
    parameter (what kubectl 1.29+ checks before sending fieldValidation=Strict)."""
    for t in REGISTRY:
        doc = json.loads(openapi.handle(f"/openapi/v3/{'apis/' + t.group if t.group else 'api'}/v1")[0])
        gvk = {"group": t.group, "version": "v1", "kind": t.kind}
        patches = [item["patch"] for item in doc["paths"].values()
                   if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]
        assert patches, t.kind
        for op in patches:
            assert {"name": "fieldValidation", "in": "query"}.items() <= op["parameters"][2].items()


def test_component_schemas_for_explain() -> None:
    """Given the core document, then Service's schema has its GVK, refs resolve, and keyed lists
    carry their strategic-merge keys."""
    doc = json.loads(openapi.v3_document("", "v1"))
    schemas = doc["components"]["schemas"]
    svc = schemas["io.k8s.api.core.v1.Service"]
    assert svc["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Service"}]
    ports = schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
    assert ports["x-kubernetes-patch-merge-key"] == "port"
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            out = [node["$ref"]] if "$ref" in node else []
            return out + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert openapi.handle("/openapi/v3/apis/storage.k8s.io/v1") is None


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """Decode one protobuf message level: (field number, wire type, value)."""
    out, i = [], 0

    def varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(data):
        key = varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            out.append((num, wire, varint()))
        elif wire == 2:
            n = varint()
            out.append((num, wire, data[i:i + n]))
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
    return out


def _get(msg: bytes, num: int) -> list[Any]:
    return [v for n, _, v in _fields(msg) if n == num]


def test_v2_protobuf_document() -> None:
    """Given /openapi/v2 asked as protobuf, then the gnostic Document has swagger 2.0 and, for
    each kind, a PATCH op with the GVK extension (YAML) and a fieldValidation query parameter."""
    body, ctype = openapi.handle("/openapi/v2", {}, openapi.V2_PROTOBUF_ACCEPT)
    assert ctype == "application/octet-stream"
    assert _get(body, 1) == [b"2.0"]
    paths = _get(body, 8)[0]
    found = {}
    for named in _get(paths, 2):
        name = _get(named, 1)[0].decode()
        op = _get(_get(named, 2)[0], 8)[0]  # PathItem.patch
        ext = _get(op, 13)[0]
        assert _get(ext, 1) == [b"x-kubernetes-group-version-kind"]
        gvk = yaml.safe_load(_get(_get(ext, 2)[0], 2)[0].decode())
        params = []
        for item in _get(op, 8):
            query = _get(_get(_get(item, 1)[0], 2)[0], 3)[0]
            params.append((_get(query, 2)[0].decode(), _get(query, 4)[0].decode()))
        assert ("query", "fieldValidation") in params
        found[(gvk["group"], gvk["kind"])] = name
    assert found[("apps", "StatefulSet")] == "/apis/apps/v1/namespaces/{namespace}/statefulsets/{name}"
    assert found[("", "Namespace")] == "/api/v1/namespaces/{name}"
    assert len(found) == len({(t.group, t.kind) for t in REGISTRY})  # a kind in several versions: once
    assert openapi.handle("/openapi/v2", {}, "application/json") is None
