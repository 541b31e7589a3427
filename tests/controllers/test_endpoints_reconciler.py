"""The legacy Endpoints reconciler: addresses, notReadyAddresses, subsets, no needless writes."""

from __future__ import annotations

from podns.controllers.endpoints.reconciler import desired, merged_for_update, needs_write

from ._builders import pod, service


def test_ready_and_not_ready_addresses() -> None:
    """Given a ready and an unready pod, then one subset with addresses and notReadyAddresses;
    a terminating pod and a pod without IP are left out."""
    pods = [
        pod("db-1", ip="10.0.0.2", ready=False),
        pod("db-0", ip="10.0.0.1", hostname="db-0", subdomain="db", node="n1"),
        pod("db-2", ip="10.0.0.3", terminating=True),
        pod("db-3", ip=None),
    ]
    ep = desired(service(), pods)
    assert ep["metadata"]["name"] == "db" and ep["metadata"]["labels"] == {
        "service.kubernetes.io/headless": ""
    }
    assert ep["subsets"] == [
        {
            "ports": [{"name": "tcp", "port": 8080, "protocol": "TCP"}],
            "addresses": [
                {
                    "ip": "10.0.0.1",
                    "hostname": "db-0",
                    "nodeName": "n1",
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-0", "uid": "uid-db-0"},
                }
            ],
            "notReadyAddresses": [
                {
                    "ip": "10.0.0.2",
                    "targetRef": {"kind": "Pod", "namespace": "default", "name": "db-1", "uid": "uid-db-1"},
                }
            ],
        }
    ]


def test_publish_not_ready_makes_all_addresses_ready() -> None:
    """Given publishNotReadyAddresses, then unready and terminating pods are under addresses."""
    ep = desired(
        service(publish_not_ready=True), [pod("a", ready=False), pod("b", ip="10.0.0.9", terminating=True)]
    )
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["10.0.0.1", "10.0.0.9"]
    assert "notReadyAddresses" not in ep["subsets"][0]


def test_no_write_when_only_trigger_time_differs() -> None:
    """Given an existing object equal but for the trigger annotation, then no write; a readiness
    change needs one, and the merge keeps foreign annotations."""
    svc = service()
    existing = desired(svc, [pod("a")])
    existing["metadata"]["annotations"]["other"] = "x"
    later = desired(svc, [pod("a", ready_since="2026-02-01T00:00:00Z")])
    assert not needs_write(existing, later)
    flipped = desired(svc, [pod("a", ready=False)])
    assert needs_write(existing, flipped)
    merged = merged_for_update(existing, flipped)
    assert merged["metadata"]["annotations"]["other"] == "x" and "notReadyAddresses" in merged["subsets"][0]


def test_dual_stack_endpoints_use_the_primary_family() -> None:
    """Given dual-stack pods, then Endpoints list the address of the Service's ipFamilies[0] (as
    Kubernetes' Endpoints controller), while EndpointSlices carry one family each."""
    p = pod("db-0", ip="10.0.0.1")
    p["status"]["podIPs"] = [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]
    v6_first = service()
    v6_first["spec"]["ipFamilies"] = ["IPv6", "IPv4"]
    assert desired(v6_first, [p])["subsets"][0]["addresses"][0]["ip"] == "fd00::1"
    assert desired(service(), [p])["subsets"][0]["addresses"][0]["ip"] == "10.0.0.1"
