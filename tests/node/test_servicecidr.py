"""The node's view of the service CIDR (`podns.node.servicecidr`): learned from Service
default/kubernetes, judged against the pod network mode, and claimed machine-wide so that two
clusters on one machine never NAT overlapping ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.cli.node import default_service_cidr
from podns.node import servicecidr
from podns.node.servicecidr import ServiceCIDRClaim, ServiceCIDRConflict
from podns.objects.wellknown import SERVICE_CIDR_ANNOTATION


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine of its own: claims of this test only."""
    path = tmp_path / "run"
    monkeypatch.setenv("PODNS_LOCK_DIR", str(path))
    return path


def kubernetes(annotation: object = None) -> dict[str, object]:
    meta: dict[str, object] = {"name": "kubernetes", "namespace": "default"}
    if annotation is not None:
        meta["annotations"] = {SERVICE_CIDR_ANNOTATION: annotation}
    return {"metadata": meta, "spec": {"clusterIP": "10.96.0.1"}}


@pytest.mark.parametrize(("service", "want"), [
    (kubernetes("10.96.0.0/16"), "10.96.0.0/16"),
    (kubernetes(" fd00:10:96::/112 , 10.96.0.0/16"), "fd00:10:96::/112,10.96.0.0/16"),
    (kubernetes(), None),
    (kubernetes("garbage"), None),
    (kubernetes(42), None),
    (None, None),
], ids=["ipv4", "dual-stack-v6-first", "no-annotation", "garbage", "not-a-string", "no-service"])
def test_learned_from_the_kubernetes_service(service: dict[str, object] | None, want: str | None) -> None:
    """given Service default/kubernetes as the API server writes it (or not), the node reads the
    range from its annotation, canonical and in order; anything unreadable is 'not said'."""
    assert servicecidr.from_kubernetes_service(service) == want


@pytest.mark.parametrize(("ranges", "mode", "bad"), [
    (["10.96.0.0/16"], "netns", False),
    (["10.96.0.0/16", "fd00:10:96::/112"], "netns", False),
    (["127.96.0.0/16"], "netns", True),
    (["127.96.0.0/16"], "loopback", False),
    (["10.96.0.0/16"], "loopback", True),
], ids=["netns-v4", "netns-dual", "netns-loopback", "loopback-loopback", "loopback-off"])
def test_unusable_reason(ranges: list[str], mode: str, bad: bool) -> None:
    """given a range and the node's mode, pods reach ClusterIPs only with a range the mode can
    serve; the reason names the flag that fixes it."""
    why = servicecidr.unusable_reason(ranges, mode)
    assert (why is not None) == bad
    if mode == "netns" and bad:
        assert "--service-cidr 10.96.0.0/16" in str(why)


def test_default_depends_on_the_pod_network() -> None:
    """given `podns up` without --service-cidr, namespace mode gets a range off loopback (kernel
    NAT), loopback mode (or --proxy-mode userspace) one the userspace proxy can listen on."""
    assert default_service_cidr("netns") == "10.96.0.0/16"
    assert default_service_cidr("netns", "iptables") == "10.96.0.0/16"
    assert default_service_cidr("netns", "userspace") == "127.96.0.0/16"  # the host's proxy listens
    assert default_service_cidr("loopback") == "127.96.0.0/16"


def test_other_cluster_overlapping_range_conflicts() -> None:
    """given cluster A's agent holding 10.96.0.0/16, an agent of cluster B asking for an
    overlapping range is refused with one line naming the flag and a free range; once A's claim
    is gone, B gets it."""
    a, b = ServiceCIDRClaim(), ServiceCIDRClaim()
    a.claim("aaaa", ["10.96.0.0/16", "fd00:10:96::/112"], flag="--service-cidr")
    with pytest.raises(ServiceCIDRConflict) as err:
        b.claim("bbbb", ["10.96.128.0/24"], flag="--service-cidr")
    message = str(err.value)
    assert "\n" not in message and "pass another --service-cidr, e.g. 10.97.0.0/24" in message
    with pytest.raises(ServiceCIDRConflict, match="fd00:10:96::/112"):
        b.claim("bbbb", ["10.50.0.0/16", "fd00:10:96::/120"], flag="--service-cidr")
    a.release()
    b.claim("bbbb", ["10.96.0.0/16"], flag="--service-cidr")
    b.release()


def test_same_cluster_or_disjoint_ranges_share_the_machine() -> None:
    """given two agents of one cluster (same id) they share their range; another cluster with a
    disjoint range, or one of another family only, is no conflict."""
    claims = [ServiceCIDRClaim() for _ in range(3)]
    claims[0].claim("aaaa", ["10.96.0.0/16"], flag="--service-cidr")
    claims[1].claim("aaaa", ["10.96.0.0/16"], flag="--service-cidr")
    claims[2].claim("cccc", ["10.97.0.0/16", "fd00:1::/112"], flag="--service-cidr")
    for c in claims:
        c.release()


def test_cluster_id_follows_the_ca() -> None:
    """given the cluster CA, agents of one cluster agree on its id whatever server they use."""
    assert servicecidr.cluster_id(b"CA", "https://a:6443") == servicecidr.cluster_id(b"CA", "https://b:6443")
    assert servicecidr.cluster_id(b"CA", "x") != servicecidr.cluster_id(b"other CA", "x")
