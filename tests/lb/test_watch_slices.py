"""EndpointSlices -> endpoints, as the watch source computes them."""

from __future__ import annotations

from podns.lb.sources.watch import endpoints_from_slices

SLICE = {
    "addressType": "IPv4",
    "ports": [{"name": "postgres", "port": 5432, "protocol": "TCP"}, {"name": "metrics", "port": 9187}],
    "endpoints": [
        {"addresses": ["127.1.0.1"], "hostname": "db-0", "conditions": {"ready": True}, "nodeName": "n1"},
        {"addresses": ["127.1.0.2"], "hostname": "db-1", "conditions": {}},
        {"addresses": ["127.1.0.3"], "hostname": "db-2",
         "conditions": {"ready": False, "serving": True, "terminating": True}},
    ],
}


def test_named_port_and_conditions() -> None:
    eps = endpoints_from_slices([SLICE], "postgres")
    assert [(e.hostname, e.port, e.ready, e.terminating) for e in eps] == [
        ("db-0", 5432, True, False),
        ("db-1", 5432, True, False),  # ready unset means ready
        ("db-2", 5432, False, True),
    ]
    assert eps[0].node_name == "n1"


def test_port_by_number_and_unknown_name() -> None:
    assert {e.port for e in endpoints_from_slices([SLICE], 9187)} == {9187}
    assert endpoints_from_slices([SLICE], "http") == []


def test_duplicate_endpoints_across_slices_are_merged() -> None:
    assert len(endpoints_from_slices([SLICE, SLICE], "postgres")) == 3


def test_empty_slice() -> None:
    assert endpoints_from_slices([{"ports": None, "endpoints": None}], None) == []
