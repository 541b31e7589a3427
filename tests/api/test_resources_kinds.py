"""The smaller kinds: namespaces, nodes, events, endpoints, endpointslices, configmaps,
secrets, PVCs, controllerrevisions, leases; plus metadata validation shared by all."""

from __future__ import annotations

import base64

import pytest

from podns.api.resources.registry import REGISTRY

from ._kinds import create, fields, rt, update


def obj(kind: str, api_version: str = "v1", name: str = "x", **body: object) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, **body}


@pytest.mark.parametrize(
    "kind,group,name,ok",
    [("Namespace", "", "my-ns", True), ("Namespace", "", "my.ns", False),
     ("ConfigMap", "", "my.config", True), ("ConfigMap", "", "My", False),
     ("Service", "", "9svc", False), ("Lease", "coordination.k8s.io", "a.b-c", True)],
    ids=str,
)
def test_names_per_kind(kind: str, group: str, name: str, ok: bool) -> None:
    """Given names, then each kind applies its Kubernetes name rule to metadata.name."""
    t = rt(kind, group)
    spec = {"ports": [{"port": 1}]} if kind == "Service" else {}
    _, errs = create(t, obj(kind, t.api_version, name, spec=spec))
    assert ("metadata.name" not in fields(errs)) is ok


def test_metadata_validation() -> None:
    """Given bad labels, annotations, owner refs and a missing name, then metadata.* errors."""
    t = rt("ConfigMap")
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "labels": {"app": "a b", "bad key!": "x"}, "annotations": {"/x": "y"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]}}
    _, errs = create(t, bad)
    assert set(fields(errs)) == {"metadata.name", "metadata.labels", "metadata.annotations",
                                 "metadata.ownerReferences.uid"}
    assert [e.message for e in errs if e.field == "metadata.name"] == [
        "Required value: name or generateName is required"]
    gen = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "web-"}}
    assert create(t, gen)[1] == []
    old, _ = create(t, obj("ConfigMap"))
    renamed = obj("ConfigMap", name="y")
    _, errs = update(t, renamed, old)
    assert 'Invalid value: "y": field is immutable' in [e.message for e in errs]


def test_namespace() -> None:
    """Given a namespace, then it is Active, finalized by kubernetes and labelled with its name."""
    out, errs = create(rt("Namespace"), obj("Namespace", name="team-a"))
    assert errs == [] and out["status"] == {"phase": "Active"}
    assert out["spec"]["finalizers"] == ["kubernetes"]
    assert out["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
    assert rt("Namespace").strategy.cells(out) == ["Active"]


def test_node() -> None:
    """Given a node with conditions, roles and info, then its row reads as `kubectl get nodes -o wide`."""
    node = obj("Node", name="n1", spec={"unschedulable": True}, status={
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "nodeInfo": {"kubeletVersion": "v1.33.0-podns", "osImage": "Debian", "kernelVersion": "6.1",
                     "containerRuntimeVersion": "podns://0.1"}})
    node["metadata"]["labels"] = {"node-role.kubernetes.io/control-plane": ""}
    out, errs = create(rt("Node"), node)
    assert errs == [] and out["status"]["nodeInfo"]["kubeletVersion"] == "v1.33.0-podns"
    assert out["status"]["nodeInfo"]["bootID"] == ""  # always serialized: the Python client needs it
    assert rt("Node").strategy.cells(out) == [
        "Ready,SchedulingDisabled", "control-plane", "v1.33.0-podns", "127.0.0.1", "<none>", "Debian",
        "6.1", "podns://0.1"]
    assert rt("Node").strategy.field_value(out, "spec.unschedulable") == "true"


def test_event() -> None:
    """Given an event without involvedObject, then one is defaulted (the Python client needs it);
    the describe field selectors and the source selector read the right values."""
    t = rt("Event")
    out, errs = create(t, obj("Event", name="e1", reason="Started", type="Normal", message=" hi ",
                              source={"component": "kubelet", "host": "n1"}))
    assert errs == [] and out["involvedObject"] == {}
    out["involvedObject"] = {"kind": "Pod", "name": "db-0", "namespace": "default", "uid": "u"}
    assert t.strategy.field_value(out, "involvedObject.kind") == "Pod"
    assert t.strategy.field_value(out, "source") == "kubelet"
    cells = t.strategy.cells(out)
    assert cells[1:8] == ["Normal", "Started", "pod/db-0", "", "kubelet, n1", "hi", "<unknown>"]
    assert cells[8:] == [1, "e1"]
    assert not t.strategy.name_column
    assert fields(create(t, obj("Event", type="Info"))[1]) == ["type"]


def test_endpoints() -> None:
    """Given endpoints, then addresses and ports validate and print as ip:port, 3 at most."""
    t = rt("Endpoints")
    ep = obj("Endpoints", subsets=[{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 5)],
                                    "ports": [{"port": 80}]}])
    out, errs = create(t, ep)
    assert errs == [] and out["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert t.strategy.cells(out) == ["10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more..."]
    bad = obj("Endpoints", subsets=[{"addresses": [{"ip": "nope"}], "ports": [{"port": 80}, {"port": 81}]}])
    assert set(fields(create(t, bad)[1])) == {"subsets[0].addresses[0].ip", "subsets[0].ports[1].name",
                                             "subsets[0].ports[0].name"}
    assert t.strategy.cells(obj("Endpoints")) == ["<none>"]


def test_endpointslice() -> None:
    """Given slices, then addressType is required and immutable, addresses match it, and the
    row shows ports and addresses as kubectl does."""
    t = rt("EndpointSlice", "discovery.k8s.io")
    es = obj("EndpointSlice", "discovery.k8s.io/v1", addressType="IPv4",
             endpoints=[{"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "hostname": "db-0"}],
             ports=[{"name": "postgres", "port": 5432}])
    out, errs = create(t, es)
    assert errs == [] and out["ports"][0]["protocol"] == "TCP"
    assert t.strategy.cells(out) == ["IPv4", "5432", "10.0.0.1"]
    bad = obj("EndpointSlice", "discovery.k8s.io/v1", endpoints=[{"addresses": ["::1"]}, {"addresses": []}])
    assert fields(create(t, bad)[1]) == ["addressType", "endpoints[1].addresses"]
    wrong = obj("EndpointSlice", "discovery.k8s.io/v1", addressType="IPv4",
                endpoints=[{"addresses": ["::1"]}])
    assert fields(create(t, wrong)[1]) == ["endpoints[0].addresses[0]"]
    changed = dict(es, addressType="IPv6", endpoints=[])
    assert fields(update(t, changed, out)[1]) == ["addressType"]
    empty = obj("EndpointSlice", "discovery.k8s.io/v1", addressType="IPv4")
    assert t.strategy.cells(empty) == ["IPv4", "<unset>", "<unset>"]


def test_configmap_and_secret() -> None:
    """Given config data, then keys are validated, immutable data stays, stringData becomes data."""
    cm = rt("ConfigMap")
    out, errs = create(cm, obj("ConfigMap", data={"a.conf": "x", "b": "y"}, immutable=True))
    assert errs == [] and cm.strategy.cells(out) == [2]
    assert fields(create(cm, obj("ConfigMap", data={"bad key": "x"}))[1]) == ["data"]
    changed = obj("ConfigMap", data={"a.conf": "z"}, immutable=True)
    assert fields(update(cm, changed, out)[1]) == ["data"]
    sec = rt("Secret")
    out, errs = create(sec, obj("Secret", stringData={"password": "hunter2"}))
    assert errs == [] and out["type"] == "Opaque" and "stringData" not in out
    assert base64.b64decode(out["data"]["password"]) == b"hunter2"
    assert sec.strategy.cells(out) == ["Opaque", 1]
    assert fields(update(sec, dict(out, type="kubernetes.io/tls"), out)[1]) == ["type"]


def test_pvc() -> None:
    """Given claims, then access modes and storage are required, the spec is immutable except
    requests, and the row shows Pending with the storage class."""
    t = rt("PersistentVolumeClaim")
    claim = obj("PersistentVolumeClaim", spec={"accessModes": ["ReadWriteOnce"], "storageClassName": "local",
                                               "resources": {"requests": {"storage": "1Gi"}}})
    out, errs = create(t, claim)
    assert errs == [] and out["status"] == {"phase": "Pending"}
    assert t.strategy.cells(out) == ["Pending", "", "", "", "local", "<unset>", "Filesystem"]
    assert set(fields(create(t, obj("PersistentVolumeClaim", spec={}))[1])) == {
        "spec.accessModes", "spec.resources[storage]"}
    grown = obj("PersistentVolumeClaim", spec=dict(claim["spec"], resources={"requests": {"storage": "2Gi"}}))
    assert update(t, grown, out)[1] == []
    other = obj("PersistentVolumeClaim", spec=dict(claim["spec"], storageClassName="fast"))
    assert fields(update(t, other, out)[1]) == ["spec"]


def test_controllerrevision_and_lease() -> None:
    """Given revisions and leases, then their rules and columns follow Kubernetes."""
    cr = rt("ControllerRevision", "apps")
    rev = obj("ControllerRevision", "apps/v1", name="db-abc", revision=2, data={"spec": {}})
    rev["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                           "uid": "u", "controller": True}]
    out, errs = create(cr, rev)
    assert errs == [] and cr.strategy.cells(out) == ["statefulset.apps/db", 2]
    assert fields(create(cr, obj("ControllerRevision", "apps/v1", revision=-1))[1]) == ["revision"]
    assert fields(update(cr, dict(rev, data={"x": 1}), out)[1]) == ["data"]
    lease = rt("Lease", "coordination.k8s.io")
    out, errs = create(lease, obj("Lease", "coordination.k8s.io/v1", spec={"holderIdentity": "me",
                                                                           "leaseDurationSeconds": 15}))
    assert errs == [] and lease.strategy.cells(out) == ["me"]
    bad = obj("Lease", "coordination.k8s.io/v1", spec={"leaseDurationSeconds": 0})
    assert fields(create(lease, bad)[1]) == ["spec.leaseDurationSeconds"]


def test_registry_lookups() -> None:
    """Given REST names, kinds and short names, then the registry finds the served type."""
    assert REGISTRY.by_name("po") is rt("Pod")
    assert REGISTRY.by_name("sts") is rt("StatefulSet", "apps")
    assert REGISTRY.by_kind("discovery.k8s.io", "EndpointSlice") is rt("EndpointSlice", "discovery.k8s.io")
    assert REGISTRY.group_versions()[0] == ("", "v1")
    keys = {t.store_resource for t in REGISTRY}
    assert "statefulsets.apps" in keys and len(keys) == len({(t.group, t.resource) for t in REGISTRY})
