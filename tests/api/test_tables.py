"""Server-side Tables: column layout per kind, Name/Age cells, row objects, Age formatting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from podns.api.encoding import tables
from podns.api.resources import _printing

from ._kinds import rt

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    _printing.set_clock(lambda: NOW)
    yield
    _printing.set_clock(None)


@pytest.mark.parametrize(
    "seconds,text",
    [(-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"), (182, "3m2s"),
     (600, "10m"), (3 * 3600 - 1, "179m"), (3 * 3600 + 60, "3h1m"), (8 * 3600, "8h"), (47 * 3600, "47h"),
     (2 * 86400 + 3 * 3600, "2d3h"), (8 * 86400, "8d"), (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y")],
)
def test_human_duration(seconds: int, text: str) -> None:
    """Given durations, then Age reads exactly as kubectl's HumanDuration."""
    assert tables.human_duration(seconds) == text


def _svc(name: str, created: str = "2023-11-14T22:13:15Z") -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created, "uid": "u1"},
            "spec": {"type": "ClusterIP", "clusterIP": "None", "selector": {"app": "db"},
                     "ports": [{"port": 5432, "protocol": "TCP"}]}}


def test_service_table() -> None:
    """Given services, then the Table has kubectl's columns (Selector wide) and full rows with
    PartialObjectMetadata objects."""
    t = tables.table(rt("Service"), [_svc("db-service")], {}, list_rv=42)
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "42"}
    cols = [(c["name"], c["priority"]) for c in t["columnDefinitions"]]
    assert cols == [("Name", 0), ("Type", 0), ("Cluster-IP", 0), ("External-IP", 0), ("Port(s)", 0),
                    ("Age", 0), ("Selector", 1)]
    assert t["columnDefinitions"][0]["format"] == "name"
    row = t["rows"][0]
    assert row["cells"] == ["db-service", "ClusterIP", "None", "<none>", "5432/TCP", "5s", "app=db"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": _svc("db-service")["metadata"]}


@pytest.mark.parametrize(
    "kind,group,columns",
    [
        ("Pod", "", ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node",
                     "Readiness Gates"]),
        ("StatefulSet", "apps", ["Name", "Ready", "Age", "Containers", "Images"]),
        ("EndpointSlice", "discovery.k8s.io", ["Name", "AddressType", "Ports", "Endpoints", "Age"]),
        ("Node", "", ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image",
                      "Kernel-Version", "Container-Runtime"]),
        ("Namespace", "", ["Name", "Status", "Age"]),
        ("ConfigMap", "", ["Name", "Data", "Age"]),
        ("Endpoints", "", ["Name", "Endpoints", "Age"]),
        ("Lease", "coordination.k8s.io", ["Name", "Holder", "Age"]),
        ("ControllerRevision", "apps", ["Name", "Controller", "Revision", "Age"]),
        ("PersistentVolumeClaim", "", ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                                       "VolumeAttributesClass", "Age", "VolumeMode"]),
        ("Event", "", ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message",
                       "First Seen", "Count", "Name"]),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_columns_match_kubernetes(kind: str, group: str, columns: list[str]) -> None:
    """Given each kind, then its Table columns are Kubernetes' printer columns, in order."""
    assert [c.name for c in tables.columns_of(rt(kind, group))] == columns


def test_rows_line_up_with_columns() -> None:
    """Given objects of every kind, then every row has exactly one cell per column."""
    from podns.api.resources.registry import REGISTRY

    for t in REGISTRY:
        obj = {"apiVersion": t.api_version, "kind": t.kind, "metadata": {"name": "x"}}
        table = tables.table(t, [obj], {"includeObject": "None"}, list_rv=1)
        assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"]), t.kind
        assert "object" not in table["rows"][0]


def test_include_object_and_watch_rows() -> None:
    """Given includeObject=Object, then rows carry the whole object; later watch rows carry no
    column definitions; a bad includeObject is refused."""
    svc = _svc("a")
    t = tables.table(rt("Service"), [svc], {"includeObject": "Object"}, list_rv=1)
    assert t["rows"][0]["object"] == svc
    later = tables.render_table(rt("Service"), [svc], with_columns=False, list_rv=2)
    assert later["columnDefinitions"] is None and len(later["rows"]) == 1
    with pytest.raises(ValueError):
        tables.table(rt("Service"), [svc], {"includeObject": "Everything"})
