"""Keys, accessors, owner references and conditions."""

from __future__ import annotations

import pytest

from podns.objects import meta


def test_keys_round_trip() -> None:
    """Given namespaced and cluster objects, then object_key and split_key are inverse."""
    pod = {"metadata": {"namespace": "default", "name": "db-0"}}
    node = {"metadata": {"name": "n1"}}
    assert meta.object_key(pod) == "default/db-0" == meta.join_key("default", "db-0")
    assert meta.split_key("default/db-0") == ("default", "db-0")
    assert meta.object_key(node) == "n1" and meta.split_key("n1") == ("", "n1")


@pytest.mark.parametrize("key", ["a/b/c", "a//b", "/a/"], ids=["three-parts", "empty-middle", "slashes"])
def test_split_key_refuses_keys_join_key_cannot_make(key: str) -> None:
    """Given a key with more than one '/', then split_key raises as SplitMetaNamespaceKey does."""
    with pytest.raises(ValueError, match="unexpected key format"):
        meta.split_key(key)


def test_controller_refs() -> None:
    """Given an owner, then its controller ref marks the child as controlled by it."""
    owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "uid": "u1"}}
    child: dict = {"metadata": {"name": "db-0"}}
    meta.set_owner_reference(child, meta.owner_reference(owner))
    assert meta.is_controlled_by(child, owner)
    ref = meta.controller_ref(child)
    assert ref is not None and ref["kind"] == "StatefulSet" and ref["blockOwnerDeletion"] is True
    assert not meta.is_controlled_by(child, {"metadata": {"uid": "other"}})
    assert meta.owner_reference({"kind": "Service", "metadata": {"name": "s"}})["apiVersion"] == "v1"


def test_conditions_keep_transition_time_when_status_unchanged() -> None:
    """Given a condition set twice with the same status, then its transition time stays; a new
    status moves it."""
    conds: list[dict] = []
    assert meta.set_condition(conds, {"type": "Ready", "status": "False"}, now="2024-01-01T00:00:00Z")
    assert not meta.set_condition(conds, {"type": "Ready", "status": "False"}, now="2024-01-02T00:00:00Z")
    assert meta.set_condition(conds, {"type": "Ready", "status": "False", "reason": "Down"},
                              now="2024-01-02T00:00:00Z")
    assert conds[0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert meta.set_condition(conds, {"type": "Ready", "status": "True", "reason": "Up"},
                              now="2024-01-03T00:00:00Z")
    pod = {"status": {"conditions": conds}}
    assert meta.get_condition(pod, "Ready") == {
        "type": "Ready", "status": "True", "lastTransitionTime": "2024-01-03T00:00:00Z", "reason": "Up"
    }
    assert meta.is_condition_true(pod, "Ready") and meta.get_condition(pod, "Other") is None
