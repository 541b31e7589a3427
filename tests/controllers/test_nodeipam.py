"""Node IPAM: blocks cut from the cluster CIDR (pure), the controller over the recording fake
(never the same block twice, Nodes with a CIDR untouched, a deleted Node's block reused, an
exhausted range reported on the Node), and the flags' errors."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from podns.controllers.manager import Options, validate
from podns.controllers.nodeipam import NodeIPAMController, allocate, parse_cluster_cidrs
from podns.kube.resources import NODES
from podns.kube.testing import FakeClient

from ._harness import eventually, running, settle

pytestmark = pytest.mark.timeout(30)


def bare(name: str, cidr: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}}


def cidrs(fake: FakeClient) -> dict[str, list[str]]:
    return {n["metadata"]["name"]: list((n.get("spec") or {}).get("podCIDRs") or [])
            for n in fake.objects(NODES)}


def test_allocate_skips_every_overlap() -> None:
    """the first /24 of the range that overlaps no used block (of any size, of this family)."""
    net = ipaddress.ip_network
    used = [net("10.244.0.0/24"), net("10.244.1.128/25"), net("fd00::/64"), net("127.1.0.0/16")]
    assert allocate(net("10.244.0.0/16"), 24, used) == net("10.244.2.0/24")
    assert allocate(net("10.244.0.0/23"), 24, used) is None
    assert allocate(net("fd00::/48"), 64, used) == net("fd00:0:0:1::/64")


@pytest.mark.parametrize(("options", "error"), [
    (Options(cluster_cidr="10.244.0.0/33"), "--cluster-cidr: '10.244.0.0/33' is not a valid CIDR"),
    (Options(cluster_cidr="10.0.0.0/8,10.1.0.0/16"), "both CIDRs are IPv4; a dual-stack list needs one IPv4"),
    (Options(cluster_cidr="10.244.0.0/16", node_cidr_mask_size=12), "larger than the cluster CIDR"),
    (Options(cluster_cidr="10.244.0.0/16", node_cidr_mask_size=30), "too small (at most /29 for IPv4)"),
], ids=["malformed", "same-family", "mask-larger", "mask-too-small"])
def test_bad_flags_are_refused_before_anything_runs(options: Options, error: str) -> None:
    with pytest.raises(ValueError) as info:
        validate(options)
    assert error in str(info.value)


def test_dual_stack_cluster_cidr_parses_in_order() -> None:
    assert [str(n) for n in parse_cluster_cidrs("fd00:10:244::/56, 10.244.0.0/16")] == [
        "fd00:10:244::/56", "10.244.0.0/16"]


async def test_nodes_get_distinct_blocks_and_a_deleted_nodes_block_is_reused() -> None:
    """given a Node with its own CIDR inside the range and three without: each of the three gets a
    different free /24 (podCIDR and podCIDRs), the first one's untouched; one deleted, a new Node
    gets its block."""
    fake = FakeClient()
    fake.seed(NODES, bare("own", "10.244.0.0/24"))
    fake.seed(NODES, bare("loop", "127.1.0.0/16"))
    for n in ("a", "b", "c"):
        fake.seed(NODES, bare(n))
    async with running(fake, NodeIPAMController):
        await eventually(lambda: all(cidrs(fake)[n] for n in "abc"))
        got = cidrs(fake)
        assert got["own"] == ["10.244.0.0/24"] and got["loop"] == ["127.1.0.0/16"]
        assert sorted(got[n][0] for n in "abc") == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
        node_a = next(n for n in fake.objects(NODES) if n["metadata"]["name"] == "a")
        assert node_a["spec"]["podCIDR"] == got["a"][0]
        freed = got["b"][0]
        await fake.delete(NODES, "b")
        await fake.create(NODES, bare("d"))
        await eventually(lambda: cidrs(fake)["d"] == [freed])


async def test_dual_stack_nodes_get_one_block_per_family() -> None:
    fake = FakeClient()
    fake.seed(NODES, bare("a"))
    dual = "10.244.0.0/16,fd00:10:244::/56"
    async with running(fake, lambda c, i: NodeIPAMController(c, i, cluster_cidr=dual)):
        await eventually(lambda: cidrs(fake)["a"] == ["10.244.0.0/24", "fd00:10:244::/64"])


async def test_exhausted_range_is_reported_on_the_node() -> None:
    """given a /24 cluster CIDR cut into /25s and three Nodes: two get a block, the third gets
    NetworkUnavailable=True (CIDRNotAvailable) and no CIDR; when one Node goes, it gets its block."""
    fake = FakeClient()
    for n in ("a", "b", "c"):
        fake.seed(NODES, bare(n))
    async with running(fake, lambda c, i: NodeIPAMController(c, i, cluster_cidr="10.9.0.0/24", mask_v4=25)):
        def starved() -> str | None:
            for n in fake.objects(NODES):
                for cond in (n.get("status") or {}).get("conditions") or []:
                    if cond["type"] == "NetworkUnavailable" and cond["reason"] == "CIDRNotAvailable":
                        return str(n["metadata"]["name"])
            return None
        name = await eventually(starved)
        await settle(fake)
        got = cidrs(fake)
        assert got[name] == [] and sorted(v[0] for k, v in got.items() if k != name) == ["10.9.0.0/25",
                                                                                          "10.9.0.128/25"]
        cond = next(c for n in fake.objects(NODES) if n["metadata"]["name"] == name
                    for c in n["status"]["conditions"])
        assert cond["message"] == "no free /25 left in the cluster CIDR 10.9.0.0/24"
        other = next(k for k in got if k != name)
        await fake.delete(NODES, other)
        await eventually(lambda: cidrs(fake)[name] == got[other])
