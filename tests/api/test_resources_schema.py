"""Strict field validation from the schema tables."""

from __future__ import annotations

import pytest

from podns.api.resources import schema
from podns.api.resources.registry import REGISTRY, schema_type

from ._kinds import rt


def test_every_type_resolves() -> None:
    """Every referenced type exists and every served kind has a schema with metadata."""
    for name in schema.type_names():
        schema.fields_of(name)
    for t in REGISTRY:
        assert "metadata" in schema.fields_of(schema_type(t)), t.kind


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


def test_wrong_types_are_refused_before_kind_rules() -> None:
    """Given values of the wrong JSON type, then validation reports only those (the kind's rules
    never see them) and defaulting leaves the object alone."""
    t = rt("Service")
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "default"},
           "spec": {"ports": [{"port": "80"}], "selector": ["app"], "clusterIP": None}}
    t.strategy.default(obj)
    assert "type" not in obj["spec"]
    errs = t.strategy.validate(obj)
    assert [(e.field, e.message) for e in errs] == [
        ("spec.ports[0].port", 'Invalid value: "80": expected integer, got string'),
        ("spec.selector", 'Invalid value: ["app"]: expected object, got array'),
    ]


def test_nulls_decode_as_zero_values() -> None:
    """Given explicit nulls, then they are dropped (null list elements become {}) before defaults."""
    t = rt("StatefulSet", "apps")
    obj = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "x", "namespace": "d"},
           "spec": {"replicas": None, "updateStrategy": None, "volumeClaimTemplates": [None]}}
    t.strategy.default(obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["updateStrategy"]["type"] == "RollingUpdate"
    assert obj["spec"]["volumeClaimTemplates"][0]["kind"] == "PersistentVolumeClaim"
