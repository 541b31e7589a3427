"""Server-side apply field ownership: fields an applier drops are removed, others' stay."""

from __future__ import annotations

from typing import Any

from podns.api.handlers import fieldsets

from .conftest import Api

STS = "/apis/apps/v1/namespaces/default/statefulsets"


def config(labels: dict[str, str], env: list[dict[str, str]], replicas: int | None = 3
           ) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": "db"}}, "serviceName": "db",
                            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                                "containers": [{"name": "db", "image": "x", "env": env}]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "labels": labels}, "spec": spec}


def test_field_set_uses_merge_keys_and_round_trips() -> None:
    """Keyed list elements become k:{...} tokens; FieldsV1 round-trips."""
    fs = fieldsets.field_set(config({"a": "1"}, [{"name": "E", "value": "v"}]))
    c = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"db"}')
    assert (*c, ".") in fs
    assert (*c, "f:env", 'k:{"name":"E"}', "f:value") in fs
    assert ("f:metadata", "f:labels", "f:a") in fs
    assert ("f:metadata", "f:name") not in fs and ("f:kind",) not in fs
    assert fieldsets.from_fields_v1(fieldsets.to_fields_v1(fs)) == fs


async def test_reapply_removes_dropped_fields_but_keeps_others(api: Api) -> None:
    """Given an applied config, when it is re-applied without a label, an env var and
    replicas, then those go; a label another applier owns stays."""
    url = f"{STS}/db?fieldManager=alice"
    first = config({"a": "1", "b": "2"}, [{"name": "E1", "value": "1"},
                                          {"name": "E2", "value": "2"}])
    assert (await api.patch(url, first, "apply")).status == 201
    other = {"apiVersion": "apps/v1", "kind": "StatefulSet",
             "metadata": {"name": "db", "labels": {"b": "2", "c": "3"}}}
    assert (await api.patch(f"{STS}/db?fieldManager=bob", other, "apply")).status == 200
    second = config({"a": "1"}, [{"name": "E1", "value": "1"}], replicas=None)
    r = await api.patch(url, second, "apply")
    assert r.status == 200, r.body
    obj = r.body
    assert obj["metadata"]["labels"] == {"a": "1", "b": "2", "c": "3"}  # b: bob owns it too
    env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["E1"]
    assert obj["spec"]["replicas"] == 1  # dropped, then defaulted again
    managers = {m["manager"]: m for m in obj["metadata"]["managedFields"]}
    assert managers["alice"]["operation"] == "Apply"
    assert "f:replicas" not in managers["alice"]["fieldsV1"]["f:spec"]
    assert managers["bob"]["fieldsV1"]["f:metadata"]["f:labels"] == {"f:b": {}, "f:c": {}}


async def test_second_applier_of_same_values_is_recorded(api: Api) -> None:
    """An apply that changes no value still records its owner (not a no-op)."""
    body = config({"a": "1"}, [])
    assert (await api.patch(f"{STS}/db?fieldManager=alice", body, "apply")).status == 201
    r = await api.patch(f"{STS}/db?fieldManager=bob", body, "apply")
    assert {m["manager"] for m in r.body["metadata"]["managedFields"]} >= {"alice", "bob"}
    body["metadata"]["labels"] = {}
    r = await api.patch(f"{STS}/db?fieldManager=alice", body, "apply")
    assert r.body["metadata"]["labels"] == {"a": "1"}  # bob still owns it
