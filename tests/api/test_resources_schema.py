"""Strict field validation from the schema tables."""

from __future__ import annotations

import pytest

from podns.api.resources import schema
from podns.api.resources.registry import REGISTRY, known_fields

from ._kinds import rt


def test_every_type_resolves() -> None:
    """Every referenced type exists and every served kind has a schema with metadata."""
    for name in schema.type_names():
        schema.fields_of(name)
    for t in REGISTRY:
        assert "metadata" in known_fields(t), t.kind


@pytest.mark.parametrize(
    "kind,group,body,unknown",
    [
        ("Service", "", {"spec": {"foo": 1, "ports": [{"port": 1, "bogus": 2}]}},
         ["spec.foo", "spec.ports[0].bogus"]),
        ("Pod", "", {"spec": {"containers": [{"name": "a", "imagePullPolcy": "x",
                                              "readinessProbe": {"tcpSocket": {"port": 1, "hots": "x"}}}]}},
         ["spec.containers[0].imagePullPolcy", "spec.containers[0].readinessProbe.tcpSocket.hots"]),
        ("StatefulSet", "apps", {"spec": {"template": {"metadata": {"labelz": {}}, "spec": {"volumes": [
            {"name": "v", "emptyDir": {"anything": 1}}]}}}}, ["spec.template.metadata.labelz"]),
        ("ConfigMap", "", {"data": {"any-key": "x"}, "extra": 1}, ["extra"]),
        ("EndpointSlice", "discovery.k8s.io", {"endpoints": [{"addresses": ["1.2.3.4"], "conditions": {
            "ready": True, "healthy": True}}]}, ["endpoints[0].conditions.healthy"]),
        ("Pod", "", {"metadata": {"labels": {"x": "y"}, "annotations": {"a": "b"}},
                     "status": {"phase": "x"}}, []),
    ],
    ids=["service", "pod", "sts-template", "configmap", "endpointslice", "maps-are-free"],
)
def test_unknown_fields(kind: str, group: str, body: dict, unknown: list[str]) -> None:
    """Given objects with typos, then exactly the unknown paths are reported, in Kubernetes' form."""
    t = rt(kind, group)
    obj = {"apiVersion": t.api_version, "kind": kind, "metadata": {"name": "x"}, **body}
    if "metadata" in body:
        obj["metadata"] = {"name": "x", **body["metadata"]}
    assert t.strategy.unknown_fields(obj) == unknown
