"""Node `spec.podCIDR` / `spec.podCIDRs`: Kubernetes' ValidateNode and ValidateNodeUpdate rules
(valid CIDRs, one per family, at most two, podCIDR = podCIDRs[0], set once), and the Status a
client gets over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from ._kinds import create, rt, update
from .conftest import Api

NODES = "/api/v1/nodes"


def node(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": spec}


@pytest.mark.parametrize(("spec", "want"), [
    ({"podCIDR": "10.244.1.0/24"}, ("10.244.1.0/24", ["10.244.1.0/24"])),
    ({"podCIDRs": ["fd00:1::/64", "10.244.1.0/24"]}, ("fd00:1::/64", ["fd00:1::/64", "10.244.1.0/24"])),
    ({"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]},
     ("10.244.1.0/24", ["10.244.1.0/24", "fd00:1::/64"])),
], ids=["podCIDR-only", "podCIDRs-only", "both"])
def test_one_field_fills_the_other(spec: dict[str, Any], want: tuple[str, list[str]]) -> None:
    """given one of podCIDR / podCIDRs (or both, agreeing): both are set and the Node is valid."""
    out, errs = create(rt("Node"), node(**spec))
    assert errs == []
    assert (out["spec"]["podCIDR"], out["spec"]["podCIDRs"]) == want


@pytest.mark.parametrize(("spec", "errors"), [
    ({"podCIDRs": ["10.244.1.0/33"]},
     [("spec.podCIDRs[0]", 'Invalid value: "10.244.1.0/33": must be a valid CIDR value, '
       "(e.g. 10.9.8.0/24 or 2001:db8::/64)")]),
    ({"podCIDR": "10.244.1.1"},
     [("spec.podCIDRs[0]", 'Invalid value: "10.244.1.1": must be a valid CIDR value, '
       "(e.g. 10.9.8.0/24 or 2001:db8::/64)")]),
    ({"podCIDRs": ["10.244.1.0/24", "10.244.2.0/24"]},
     [("spec.podCIDRs", 'Invalid value: ["10.244.1.0/24","10.244.2.0/24"]: may specify no more than '
       "one CIDR for each IP family")]),
    ({"podCIDRs": ["10.244.1.0/24", "fd00:1::/64", "fd00:2::/64"]},
     [("spec.podCIDRs", 'Invalid value: ["10.244.1.0/24","fd00:1::/64","fd00:2::/64"]: may specify no '
       "more than one CIDR for each IP family")]),
    ({"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]},
     [("spec.podCIDR", 'Invalid value: "10.244.9.0/24": must match the first entry of spec.podCIDRs '
       "(10.244.1.0/24)")]),
], ids=["bad-prefix", "not-a-cidr", "two-ipv4", "three", "podCIDR-not-first"])
def test_bad_pod_cidrs_are_invalid_with_field_paths(spec: dict[str, Any],
                                                    errors: list[tuple[str, str]]) -> None:
    """given malformed or ill-paired pod CIDRs: each error names its field, as Kubernetes does."""
    _, errs = create(rt("Node"), node(**spec))
    assert [(e.field, e.message) for e in errs] == errors


@pytest.mark.parametrize(("old", "new", "ok"), [
    ({}, {"podCIDR": "10.244.1.0/24"}, True),  # from "" to valid: the node IPAM controller's write
    ({"podCIDR": "10.244.1.0/24"}, {"podCIDR": "10.244.1.0/24"}, True),
    ({"podCIDR": "10.244.1.0/24"}, {"podCIDRs": ["10.244.2.0/24"]}, False),
    ({"podCIDR": "10.244.1.0/24"}, {"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}, False),  # adding a family
    ({"podCIDRs": ["10.244.1.0/24", "fd00:1::/64"]}, {"podCIDRs": ["fd00:1::/64", "10.244.1.0/24"]}, False),
    ({"podCIDR": "10.244.1.0/24"}, {}, False),  # clearing
], ids=["set", "same", "changed", "family-added", "reordered", "cleared"])
def test_pod_cidrs_are_set_once(old: dict[str, Any], new: dict[str, Any], ok: bool) -> None:
    """given a stored Node: its pod CIDRs may go from empty to set, and never change after."""
    t = rt("Node")
    stored, errs = create(t, node(**old))
    assert errs == []
    _, errs = update(t, node(**new), stored)
    if ok:
        assert errs == []
    else:
        assert [(e.field, e.message) for e in errs] == [
            ("spec.podCIDRs", 'Forbidden: node updates may not change podCIDR except from "" to valid')]


async def test_status_errors_over_http(real_api: Api) -> None:
    """a bad create is a 422 Invalid Status with the field path; a change of a set CIDR too; the
    write that sets an empty Node's CIDR goes through."""
    api = real_api
    r = await api.post(NODES, {"metadata": {"name": "bad"},
                               "spec": {"podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"]}})
    assert (r.status, r.body.get("reason")) == (422, "Invalid"), r.body
    assert [c["field"] for c in r.body["details"]["causes"]] == ["spec.podCIDRs"]
    assert (await api.post(NODES, {"metadata": {"name": "n1"}})).status == 201
    r = await api.patch(f"{NODES}/n1", {"spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
    assert r.status == 200 and r.body["spec"]["podCIDRs"] == ["10.244.1.0/24"], r.body
    r = await api.patch(f"{NODES}/n1", {"spec": {"podCIDR": "10.244.2.0/24", "podCIDRs": ["10.244.2.0/24"]}})
    assert (r.status, r.body["reason"]) == (422, "Invalid"), r.body
    assert r.body["message"] == ('Node "n1" is invalid: spec.podCIDRs: Forbidden: node updates may not '
                                 'change podCIDR except from "" to valid')
