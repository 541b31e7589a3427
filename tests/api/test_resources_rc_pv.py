"""ReplicationController and PersistentVolume (core/v1): defaults, validation paths and
messages, cells, and the Scale of a ReplicationController."""

from __future__ import annotations

from podns.api.encoding import tables
from podns.api.handlers.subresources import to_scale
from podns.api.resources.registry import REGISTRY
from podns.api.resources.scale import SCALE

from ._kinds import create, fields, update

Obj = dict


def rc(**spec: object) -> Obj:
    template = {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
            "spec": {"template": template, **spec}}


def test_replicationcontroller() -> None:
    """Given ReplicationControllers, then an empty selector and labels take the template's,
    replicas default to 1, a selector not matching the template or missing parts are refused with
    Kubernetes' paths, the selector may change, and the Scale's selector is the label map."""
    t = REGISTRY.lookup("", "v1", "replicationcontrollers")
    assert t is not None and t.short_names == ("rc",) and "all" in t.categories
    out, errs = create(t, rc())
    assert errs == []
    assert out["spec"]["selector"] == {"app": "web"} and out["metadata"]["labels"] == {"app": "web"}
    assert out["spec"]["replicas"] == 1 and out["status"] == {"replicas": 0}
    assert out["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert t.strategy.cells(out) == [1, 0, 0, "c", "nginx", "app=web"]
    assert to_scale(out)["status"] == {"replicas": 0, "selector": "app=web"}
    table = tables.render_table(SCALE, [to_scale(out)], list_rv=1)  # get rc --subresource=scale
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Desired", "Available", "Age"]
    assert table["rows"][0]["cells"][:3] == ["web", 1, 0]
    _, errs = create(t, rc(selector={"app": "other"}, replicas=-1))
    assert fields(errs) == ["spec.replicas", "spec.template.metadata.labels"]
    _, errs = create(t, {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "x"},
                         "spec": {}})
    assert [(e.field, e.message) for e in errs] == [("spec.selector", "Required value"),
                                                    ("spec.template", "Required value")]
    moved = rc(selector={"app": "web", "tier": "a"})
    moved["spec"]["template"]["metadata"]["labels"]["tier"] = "a"
    assert update(t, moved, out)[1] == []


def volume(**spec: object) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteOnce"], **spec}}


def test_persistentvolume() -> None:
    """Given PersistentVolumes, then reclaim policy and volume mode default as Kubernetes, a new
    one is Pending, exactly one source is required, sources need their fields, the source is
    immutable, and the row is CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM ..."""
    t = REGISTRY.lookup("", "v1", "persistentvolumes")
    assert t is not None and not t.namespaced and t.short_names == ("pv",)
    out, errs = create(t, volume(hostPath={"path": "/srv"}))
    assert errs == [] and out["status"] == {"phase": "Pending"}
    assert out["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert out["spec"]["volumeMode"] == "Filesystem"
    assert t.strategy.cells(out) == ["5Gi", "RWO", "Retain", "Pending", "", "", "<unset>", "",
                                     "Filesystem"]
    bound = volume(csi={"driver": "podns.io/node-local", "volumeHandle": "default/data"},
                   claimRef={"namespace": "default", "name": "data"})
    assert t.strategy.cells(create(t, bound)[0])[4] == "default/data"
    _, errs = create(t, volume())
    assert [(e.field, e.message) for e in errs] == [("spec", "Required value: must specify a volume type")]
    _, errs = create(t, volume(hostPath={"path": "/a"}, nfs={"server": "s", "path": "/"}))
    assert [(e.field, e.message) for e in errs] == [
        ("spec.nfs", "Forbidden: may not specify more than 1 volume type")]
    _, errs = create(t, {**volume(local={"path": "/mnt"}), "spec": {
        "capacity": {"storage": "1Gi", "cpu": "1"}, "accessModes": ["Sometimes"], "local": {"path": "/mnt"},
        "persistentVolumeReclaimPolicy": "Keep"}})
    assert fields(errs) == ["spec.accessModes", "spec.capacity", "spec.nodeAffinity",
                            "spec.persistentVolumeReclaimPolicy"]
    moved = volume(hostPath={"path": "/elsewhere"})
    assert fields(update(t, moved, out)[1]) == ["spec.persistentvolumesource"]
