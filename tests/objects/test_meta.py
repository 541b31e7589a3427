"""Keys, owner references, conditions and timestamps."""

from __future__ import annotations

import datetime as dt

import pytest

from podns.objects import meta


def test_keys_round_trip() -> None:
    """Given namespaced and cluster objects, then object_key and split_key are inverse."""
    pod = {"metadata": {"namespace": "default", "name": "db-0"}}
    node = {"metadata": {"name": "n1"}}
    assert meta.object_key(pod) == "default/db-0"
    assert meta.split_key("default/db-0") == ("default", "db-0")
    assert meta.object_key(node) == "n1" and meta.split_key("n1") == ("", "n1")
    with pytest.raises(ValueError):
        meta.split_key("a/b/c")


def test_controller_refs() -> None:
    """Given an owner, then its controller ref marks the child as controlled by it."""
    owner = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "uid": "u1"}}
    child: dict = {"metadata": {"name": "db-0"}}
    meta.set_owner_reference(child, meta.make_controller_ref(owner))
    assert meta.is_controlled_by(child, owner)
    assert meta.controller_ref(child)["kind"] == "StatefulSet"
    assert not meta.is_controlled_by(child, {"metadata": {"uid": "other"}})


def test_conditions_keep_transition_time_when_status_unchanged() -> None:
    """Given a condition set twice with the same status, then its transition time stays."""
    pod: dict = {}
    assert meta.set_condition(pod, "Ready", "False", at="2024-01-01T00:00:00Z")
    assert not meta.set_condition(pod, "Ready", "False", at="2024-01-02T00:00:00Z")
    assert meta.set_condition(pod, "Ready", "True", reason="Up", at="2024-01-03T00:00:00Z")
    cond = meta.get_condition(pod, "Ready")
    assert cond == {
        "type": "Ready", "status": "True", "lastTransitionTime": "2024-01-03T00:00:00Z", "reason": "Up"
    }
    assert meta.is_condition_true(pod, "Ready")
    assert meta.remove_condition(pod, "Ready") and meta.get_condition(pod, "Ready") is None


def test_timestamps() -> None:
    """Given datetimes, then they render as RFC 3339 UTC and parse back."""
    when = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    assert meta.format_time(when) == "2024-01-02T03:04:05Z"
    assert meta.format_micro_time(when) == "2024-01-02T03:04:05.123456Z"
    assert meta.parse_time("2024-01-02T03:04:05Z") == when.replace(microsecond=0)
    assert meta.parse_time("2024-01-02T04:04:05+01:00") == when.replace(microsecond=0)
    with pytest.raises(ValueError):
        meta.parse_time("yesterday")
