"""Discovery documents: negotiation, legacy lists and aggregated v2/v2beta1."""

from __future__ import annotations

import pytest

from podns.api.discovery import apidiscovery

V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
V2B1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


@pytest.mark.parametrize(
    "accept,version",
    [(f"{V2},{V2B1},application/json", "v2"),      # kubectl 1.30+
     (f"{V2B1},application/json", "v2beta1"),        # kubectl 1.27-1.29
     ("application/json, */*", None),               # legacy clients, the Python client
     (None, None),
     ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", None)],
    ids=["1.33", "1.27", "legacy", "none", "table"],
)
def test_negotiate(accept: str | None, version: str | None) -> None:
    """Given kubectl's Accept headers, then the aggregated version it prefers is chosen."""
    assert apidiscovery.negotiate(accept) == version


def test_root_documents() -> None:
    """Given /api and /apis requests, then the content type tells which format came back."""
    body, ctype = apidiscovery.handle("/api", f"{V2},application/json")
    assert ctype == V2 and body["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert [i["metadata"]["name"] for i in body["items"]] == [""]
    body, ctype = apidiscovery.handle("/apis", f"{V2B1},application/json")
    assert ctype == V2B1 and body["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    names = [i["metadata"]["name"] for i in body["items"]]
    assert names == ["apps", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
                     "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "coordination.k8s.io",
                     "discovery.k8s.io", "node.k8s.io"]
    autoscaling = body["items"][names.index("autoscaling")]
    assert [v["version"] for v in autoscaling["versions"]] == ["v2", "v1"]  # preferred first
    body, ctype = apidiscovery.handle("/api", "application/json")
    assert ctype == "application/json" and body["kind"] == "APIVersions" and body["versions"] == ["v1"]
    body, _ = apidiscovery.handle("/apis", "application/json")
    assert body["kind"] == "APIGroupList"
    assert body["groups"][0] == {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                                 "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}


def test_aggregated_resources() -> None:
    """Given aggregated discovery, then short names, scope, categories and subresources (scale as
    autoscaling/v1 Scale) are advertised."""
    body, _ = apidiscovery.handle("/apis", V2)
    apps = body["items"][0]["versions"][0]
    assert apps["freshness"] == "Current"
    sts = next(r for r in apps["resources"] if r["resource"] == "statefulsets")
    assert sts["shortNames"] == ["sts"] and sts["categories"] == ["all"] and sts["scope"] == "Namespaced"
    subs = {s["subresource"]: s for s in sts["subresources"]}
    assert subs["scale"]["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert subs["status"]["responseKind"] == {"group": "apps", "version": "v1", "kind": "StatefulSet"}
    core, _ = apidiscovery.handle("/api", V2)
    nodes = next(r for r in core["items"][0]["versions"][0]["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_resource_lists() -> None:
    """Given /api/v1 and /apis/<g>/<v>, then APIResourceLists list subresources as entries."""
    body, ctype = apidiscovery.handle("/api/v1", "application/json")
    assert ctype == "application/json" and body["groupVersion"] == "v1"
    names = [r["name"] for r in body["resources"]]
    assert {"pods", "pods/status", "pods/binding", "services", "services/status", "namespaces",
            "events", "endpoints", "nodes"} <= set(names)
    binding = next(r for r in body["resources"] if r["name"] == "pods/binding")
    assert binding["kind"] == "Binding" and binding["verbs"] == ["create"]
    body, _ = apidiscovery.handle("/apis/apps/v1", "application/json")
    scale = next(r for r in body["resources"] if r["name"] == "statefulsets/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    group, _ = apidiscovery.handle("/apis/discovery.k8s.io", "application/json")
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1"
    for missing in ("/apis/storage.k8s.io", "/apis/apps/v2", "/api/v2", "/apis/apps/v1/extra"):
        assert apidiscovery.handle(missing, "application/json") is None
