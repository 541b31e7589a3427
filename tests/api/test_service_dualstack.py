"""Dual-stack Services over HTTP: `ipFamilyPolicy`/`ipFamilies`/`clusterIPs` defaulting, validation
(422 Status with Kubernetes' field paths and messages), allocation per family, upgrade/downgrade.

Two real API servers: a dual-stack one (`--service-cidr 10.96.0.0/24,fd00:10:96::/112`) and a
single-stack one (`10.96.0.0/24`)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, serve

V4, V6 = ipaddress.ip_network("10.96.0.0/24"), ipaddress.ip_network("fd00:10:96::/112")
SVCS = "/api/v1/namespaces/default/services"


@pytest.fixture
async def dual(tmp_path: Path) -> AsyncIterator[Api]:
    (tmp_path / "dual").mkdir()
    async with serve(tmp_path / "dual", types=None, service_cidr=f"{V4},{V6}") as api:
        yield api


@pytest.fixture
async def single(tmp_path: Path) -> AsyncIterator[Api]:
    (tmp_path / "single").mkdir()
    async with serve(tmp_path / "single", types=None, service_cidr=str(V4)) as api:
        yield api


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("selector", {"app": name})
    spec.setdefault("ports", [{"port": 80}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


async def created(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    reply = await api.post(SVCS, body)
    assert reply.status == 201, reply.body
    return dict(reply.body["spec"])


def causes(reply: Any) -> list[tuple[str, str]]:
    assert reply.status == 422, reply.body
    assert reply.body["kind"] == "Status" and reply.body["reason"] == "Invalid"
    return [(c["field"], c["message"]) for c in reply.body["details"]["causes"]]


def family(ip: str) -> str:
    return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"


def in_range(spec: dict[str, Any]) -> bool:
    nets = {"IPv4": V4, "IPv6": V6}
    return all(ipaddress.ip_address(ip) in nets[f] for ip, f in zip(spec["clusterIPs"], spec["ipFamilies"],
                                                                     strict=True))


@pytest.mark.parametrize(("extra", "policy", "families"), [
    ({}, "SingleStack", ["IPv4"]),
    ({"ipFamilyPolicy": "PreferDualStack"}, "PreferDualStack", ["IPv4", "IPv6"]),
    ({"ipFamilyPolicy": "RequireDualStack"}, "RequireDualStack", ["IPv4", "IPv6"]),
    ({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6"]}, "RequireDualStack", ["IPv6", "IPv4"]),
    ({"ipFamilies": ["IPv6"]}, "SingleStack", ["IPv6"]),
    ({"clusterIP": "fd00:10:96::7"}, "SingleStack", ["IPv6"]),
    ({"ipFamilyPolicy": "PreferDualStack", "clusterIP": "10.96.0.9",
      "clusterIPs": ["10.96.0.9", "fd00:10:96::9"]},
     "PreferDualStack", ["IPv4", "IPv6"]),
], ids=["default", "prefer", "require", "require-v6-first", "v6-only", "v6-ip", "both-ips"])
async def test_dual_stack_cluster_defaults_and_allocates(dual: Api, extra: dict[str, Any], policy: str,
                                                         families: list[str]) -> None:
    """given a dual-stack cluster, when a Service asks for a policy/families/IPs, then they are
    defaulted as kube-apiserver does and one cluster IP per family is allocated in its range."""
    spec = await created(dual, svc("web", **extra))
    assert spec["ipFamilyPolicy"] == policy and spec["ipFamilies"] == families
    assert [family(ip) for ip in spec["clusterIPs"]] == families
    assert spec["clusterIP"] == spec["clusterIPs"][0] and in_range(spec)
    if "clusterIPs" in extra:
        assert spec["clusterIPs"] == extra["clusterIPs"]


async def test_headless_services_get_families(dual: Api, single: Api) -> None:
    """given headless Services, then they get ipFamilies too (no IPs): selectorless ones default to
    RequireDualStack (both families, even on a single-stack cluster), others to SingleStack."""
    spec = await created(dual, svc("db", clusterIP="None", ipFamilyPolicy="PreferDualStack"))
    assert spec["clusterIPs"] == ["None"] and spec["ipFamilies"] == ["IPv4", "IPv6"]
    spec = await created(dual, svc("plain", clusterIP="None"))
    assert spec["ipFamilyPolicy"] == "SingleStack" and spec["ipFamilies"] == ["IPv4"]
    for api in (dual, single):
        body = svc("ext", clusterIP="None")
        del body["spec"]["selector"]
        spec = await created(api, body)
        assert spec["ipFamilyPolicy"] == "RequireDualStack" and spec["ipFamilies"] == ["IPv4", "IPv6"]


@pytest.mark.parametrize(("extra", "expected"), [
    ({"ipFamilyPolicy": "RequireDualStack"},
     [("spec.ipFamilyPolicy", 'Invalid value: "RequireDualStack": this cluster is not configured for '
       "dual-stack services")]),
    ({"ipFamilyPolicy": "RequireDualStack", "clusterIP": "None"},
     [("spec.ipFamilyPolicy", 'Invalid value: "RequireDualStack": this cluster is not configured for '
       "dual-stack services")]),
    ({"ipFamilies": ["IPv6"]},
     [("spec.ipFamilies[0]", 'Invalid value: "IPv6": not configured on this cluster')]),
    ({"clusterIP": "fd00:10:96::5"},
     [("spec.clusterIPs[0]", 'Invalid value: ["fd00:10:96::5"]: IPv6 is not configured on this cluster')]),
])
async def test_single_stack_cluster_refuses_ipv6(single: Api, extra: dict[str, Any],
                                                 expected: list[tuple[str, str]]) -> None:
    """given a single-stack IPv4 cluster, when a Service demands IPv6, then 422 with the field path."""
    assert causes(await single.post(SVCS, svc("web", **extra))) == expected


async def test_single_stack_cluster_prefer_is_single(single: Api) -> None:
    """given a single-stack cluster, PreferDualStack gets the one family there is."""
    spec = await created(single, svc("web", ipFamilyPolicy="PreferDualStack"))
    assert spec["ipFamilies"] == ["IPv4"] and len(spec["clusterIPs"]) == 1


@pytest.mark.parametrize(("extra", "expected"), [
    ({"ipFamilyPolicy": "SingleStack", "clusterIP": "10.96.0.3",
      "clusterIPs": ["10.96.0.3", "fd00:10:96::3"]},
     ("spec.ipFamilyPolicy", 'Invalid value: "SingleStack": must be \'RequireDualStack\' or '
      "'PreferDualStack' when multiple cluster IPs are specified")),
    ({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4", "IPv6"]},
     ("spec.ipFamilyPolicy", 'Invalid value: "SingleStack": must be \'RequireDualStack\' or '
      "'PreferDualStack' when multiple IP families are specified")),
    ({"ipFamilyPolicy": "PreferDualStack", "clusterIP": "10.96.0.3",
      "clusterIPs": ["10.96.0.3", "10.96.0.4"]},
     ("spec.clusterIPs", 'Invalid value: ["10.96.0.3","10.96.0.4"]: may specify no more than one IP for '
      "each IP family")),
    ({"clusterIP": "10.96.0.3", "clusterIPs": ["10.96.0.4"]},
     ("spec.clusterIPs", 'Invalid value: ["10.96.0.4"]: first value must match `clusterIP`')),
    ({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv4"]},
     ("spec.ipFamilies[1]", 'Duplicate value: "IPv4"')),
    ({"ipFamilies": ["IPv5"]},
     ("spec.ipFamilies[0]", 'Unsupported value: "IPv5": supported values: "IPv4", "IPv6"')),
    ({"ipFamilyPolicy": "Both"}, ("spec.ipFamilyPolicy", 'Unsupported value: "Both": supported values: '
                                 '"PreferDualStack", "RequireDualStack", "SingleStack"')),
    ({"ipFamilies": ["IPv4"], "clusterIP": "fd00:10:96::3"},
     ("spec.clusterIPs[0]",
      'Invalid value: "fd00:10:96::3": expected an IPv4 value as indicated by `ipFamilies[0]`')),
    ({"clusterIP": "None", "clusterIPs": ["None", "10.96.0.3"], "ipFamilyPolicy": "PreferDualStack"},
     ("spec.clusterIPs", 'Invalid value: ["None","10.96.0.3"]: \'None\' must be the first and only value')),
    ({"type": "ExternalName", "externalName": "db.example.com", "ipFamilies": ["IPv4"], "ports": []},
     ("spec.ipFamilies", "Forbidden: may not be set for ExternalName services")),
], ids=["single-two-ips", "single-two-families", "same-family", "ip-mismatch", "dup-family",
        "bad-family", "bad-policy", "ip-vs-family", "none-not-alone", "externalname"])
async def test_validation_paths(dual: Api, extra: dict[str, Any], expected: tuple[str, str]) -> None:
    """given an inconsistent Service, then 422 names the field and Kubernetes' message."""
    assert expected in causes(await dual.post(SVCS, svc("web", **extra)))


async def test_upgrade_and_downgrade(dual: Api) -> None:
    """given a SingleStack Service, when it is patched to PreferDualStack, then it gains a
    secondary IP; the primary never changes; dropping the secondary needs SingleStack and frees
    the address for another Service."""
    spec = await created(dual, svc("web"))
    primary = spec["clusterIP"]
    reply = await dual.patch(f"{SVCS}/web", {"spec": {"ipFamilyPolicy": "PreferDualStack"}})
    assert reply.status == 200, reply.body
    up = reply.body["spec"]
    assert up["ipFamilies"] == ["IPv4", "IPv6"] and up["clusterIPs"][0] == primary and in_range(up)
    secondary = up["clusterIPs"][1]
    reply = await dual.patch(f"{SVCS}/web", {"spec": {"ipFamilies": ["IPv4"], "clusterIPs": [primary]}})
    assert ("spec.ipFamilyPolicy", 'Invalid value: "PreferDualStack": must be \'SingleStack\' to release '
            "the secondary cluster IP") in causes(reply)
    reply = await dual.patch(f"{SVCS}/web", {"spec": {"ipFamilies": ["IPv6", "IPv4"]}})
    assert [c[0] for c in causes(reply)] == ["spec.clusterIPs[0]", "spec.clusterIPs[1]"]  # the primary stays
    reply = await dual.patch(f"{SVCS}/web", {"spec": {"ipFamilyPolicy": "SingleStack"}})
    assert reply.status == 200, reply.body
    down = reply.body["spec"]
    assert down["clusterIPs"] == [primary] and down["ipFamilies"] == ["IPv4"]
    again = await created(dual, svc("other", ipFamilies=["IPv6"], clusterIP=secondary))
    assert again["clusterIPs"] == [secondary]


async def test_delete_releases_every_family(dual: Api) -> None:
    """given a dual-stack Service, when it is deleted, then both addresses can be requested again."""
    spec = await created(dual, svc("web", ipFamilyPolicy="RequireDualStack"))
    taken = await dual.post(SVCS, svc("copy", ipFamilyPolicy="RequireDualStack", clusterIP=spec["clusterIP"],
                                      clusterIPs=spec["clusterIPs"]))
    assert ("spec.clusterIPs", f'Invalid value: {_json(spec["clusterIPs"])}: failed to allocate IP '
            f'{spec["clusterIPs"][0]}: provided IP is already allocated') in causes(taken)
    assert (await dual.delete(f"{SVCS}/web")).status == 200
    again = await created(dual, svc("copy", ipFamilyPolicy="RequireDualStack", clusterIP=spec["clusterIP"],
                                    clusterIPs=spec["clusterIPs"]))
    assert again["clusterIPs"] == spec["clusterIPs"]


def _json(value: Any) -> str:
    return "[" + ",".join(f'"{v}"' for v in value) + "]"
