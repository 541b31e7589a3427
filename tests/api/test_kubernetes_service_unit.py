"""Pure parts of the `kubernetes` Service keeper: its cluster IP, the endpoint address an API
server advertises, and the EndpointSlices/Endpoints it writes for the live API servers."""

from __future__ import annotations

from podns.api.handlers.kubernetesservice import advertise_address, desired_endpoints, first_address


def test_cluster_ip_is_the_first_address_of_the_primary_cidr() -> None:
    assert first_address("127.96.0.0/16") == "127.96.0.1"
    assert first_address("10.96.0.0/24,fd00:10:96::/112") == "10.96.0.1"
    assert first_address("fd00:10:96::/112,10.96.0.0/24") == "fd00:10:96::1"


def test_advertised_address_is_an_ip() -> None:
    assert advertise_address("10.1.2.3") == "10.1.2.3"
    assert advertise_address("0.0.0.0") == "127.0.0.1"
    assert advertise_address("::") == "::1"
    assert advertise_address("[fd00::5]") == "fd00::5"
    assert advertise_address("localhost") in ("127.0.0.1", "::1")


def test_one_slice_per_port_listing_every_live_server() -> None:
    slices, endpoints = desired_endpoints([("127.0.0.2", 6443), ("127.0.0.1", 6443), ("127.0.0.3", 7443)])
    assert sorted(slices) == ["kubernetes", "kubernetes-7443"]
    first = slices["kubernetes"]
    assert first["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert [e["addresses"] for e in first["endpoints"]] == [["127.0.0.1"], ["127.0.0.2"]]
    assert first["ports"] == [{"name": "https", "port": 6443, "protocol": "TCP"}]
    ips = [[a["ip"] for a in sub["addresses"]] for sub in endpoints["subsets"]]
    assert ips == [["127.0.0.1", "127.0.0.2"], ["127.0.0.3"]]
    assert desired_endpoints([])[0] == {}
