"""The API's patch flavours as pure functions (RFC 7386, strategic merge, apply); RFC 6902 is
tests/objects/test_jsonpatch.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.api.handlers.patch import (
    PatchError,
    apply_patch,
    merge_patch,
    strategic_merge_patch,
)

# -- JSON merge patch: the RFC 7386 appendix A examples ---------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "want"), RFC7386, ids=range(len(RFC7386)))
def test_merge_patch_rfc7386_examples(target: Any, patch: Any, want: Any) -> None:
    """Given RFC 7386's examples, merge_patch produces the RFC's results."""
    assert merge_patch(target, patch) == want


@given(st.recursive(st.none() | st.integers() | st.text(max_size=3),
                    lambda c: st.dictionaries(st.text(max_size=3), c, max_size=3), max_leaves=8))
def test_merge_patch_does_not_mutate_inputs(doc: Any) -> None:
    """Inputs stay unchanged whatever the patch."""
    before = copy.deepcopy(doc)
    merge_patch(doc, doc)
    merge_patch({"x": doc}, {"x": None})
    assert doc == before


# -- strategic merge patch --------------------------------------------------------------------

STS = {
    "metadata": {"name": "db", "labels": {"app": "db"}, "finalizers": ["a"]},
    "spec": {"replicas": 3, "template": {"spec": {"containers": [
        {"name": "db", "image": "pg:15", "ports": [{"containerPort": 5432, "name": "postgres"}],
         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
        {"name": "sidecar", "image": "busybox"},
    ]}}},
}


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]  # type: ignore[no-any-return]


def test_smp_merges_containers_by_name_and_env_by_name() -> None:
    """A patch naming one container and one env var changes only those."""
    out = strategic_merge_patch(STS, {"spec": {"template": {"spec": {"containers": [
        {"name": "db", "image": "pg:16", "env": [{"name": "B", "value": "3"}]}]}}}})
    db, sidecar = _containers(out)
    assert db["image"] == "pg:16"
    assert db["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    assert db["ports"] == [{"containerPort": 5432, "name": "postgres"}]
    assert sidecar == {"name": "sidecar", "image": "busybox"}


def test_smp_delete_directive_and_set_element_order() -> None:
    """`$patch: delete` removes a keyed element; `$setElementOrder` fixes the order."""
    out = strategic_merge_patch(STS, {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}],
        "containers": [{"name": "db", "$patch": "delete"}, {"name": "new", "image": "x"}]}}}})
    assert [c["name"] for c in _containers(out)] == ["sidecar", "new"]


def test_smp_service_ports_merge_by_port_and_container_ports_by_container_port() -> None:
    """Service ports merge on `port`; container ports on `containerPort`."""
    svc = {"spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
    out = strategic_merge_patch(svc, {"spec": {"ports": [{"port": 81, "targetPort": 9000}]}})
    assert out["spec"]["ports"] == [{"name": "a", "port": 80},
                                    {"name": "b", "port": 81, "targetPort": 9000}]
    out = strategic_merge_patch(STS, {"spec": {"template": {"spec": {"containers": [
        {"name": "db", "ports": [{"containerPort": 9187, "name": "metrics"}]}]}}}})
    assert [p["containerPort"] for p in _containers(out)[0]["ports"]] == [5432, 9187]


def test_smp_replace_retain_keys_and_primitive_lists() -> None:
    """`$patch: replace`, `$retainKeys`, finalizers as a set, `$deleteFromPrimitiveList`."""
    out = strategic_merge_patch(STS, {"metadata": {"labels": {"$patch": "replace", "x": "y"}}})
    assert out["metadata"]["labels"] == {"x": "y"}
    out = strategic_merge_patch({"spec": {"strategy": {"type": "A", "rolling": {"n": 1}}}},
                                {"spec": {"strategy": {"$retainKeys": ["type"], "type": "B"}}})
    assert out["spec"]["strategy"] == {"type": "B"}
    out = strategic_merge_patch(STS, {"metadata": {"finalizers": ["b", "a"]}})
    assert out["metadata"]["finalizers"] == ["a", "b"]
    out = strategic_merge_patch(out, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}})
    assert out["metadata"]["finalizers"] == ["b"]


def test_smp_conditions_merge_by_type_and_unkeyed_lists_replace() -> None:
    """Conditions merge on `type`; lists without a merge key are replaced whole."""
    pod = {"status": {"conditions": [{"type": "Ready", "status": "False"},
                                     {"type": "Initialized", "status": "True"}]},
           "spec": {"tolerations": [{"key": "a"}]}}
    out = strategic_merge_patch(pod, {"status": {"conditions": [{"type": "Ready",
                                                                 "status": "True"}]},
                                      "spec": {"tolerations": [{"key": "b"}]}})
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "Initialized", "status": "True"}]
    assert out["spec"]["tolerations"] == [{"key": "b"}]


def test_smp_null_deletes_and_missing_merge_key_is_an_error() -> None:
    """null deletes a field; a keyed list element without its key is a 400."""
    out = strategic_merge_patch(STS, {"metadata": {"labels": None}})
    assert "labels" not in out["metadata"]
    with pytest.raises(PatchError):
        strategic_merge_patch(STS, {"spec": {"template": {"spec": {"containers": [
            {"image": "x"}]}}}})


def test_apply_patch_merges_into_live_object() -> None:
    """Server-side apply keeps live fields it does not mention and merges lists by key."""
    out = apply_patch(STS, {"spec": {"replicas": 5, "template": {"spec": {"containers": [
        {"name": "db", "image": "pg:17"}]}}}})
    assert out["spec"]["replicas"] == 5
    assert [c["image"] for c in _containers(out)] == ["pg:17", "busybox"]
    assert out["metadata"] == STS["metadata"]


def test_smp_endpointslice_ports_and_addresses_are_atomic() -> None:
    """EndpointSlice `ports` and endpoint `addresses` are replaced, not merged."""
    es = {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}],
          "endpoints": [{"addresses": ["127.0.0.2"], "conditions": {"ready": True}}]}
    out = strategic_merge_patch(es, {"ports": [{"name": "a", "port": 80}],
                                     "endpoints": [{"addresses": ["127.0.0.3"]}]})
    assert out["ports"] == [{"name": "a", "port": 80}]
    assert out["endpoints"] == [{"addresses": ["127.0.0.3"]}]
