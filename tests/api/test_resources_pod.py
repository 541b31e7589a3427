"""Pods: defaults, validation paths, the mostly-immutable spec, grace periods and printing."""

from __future__ import annotations

import pytest

from podns.api.resources import _printing

from ._kinds import create, fields, rt, update

POD = rt("Pod")


def pod(**spec: object) -> dict:
    base = {"containers": [{"name": "app", "image": "busybox:1.36"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "db-0"}, "spec": base}


def test_defaults() -> None:
    """Given a minimal pod, then Kubernetes' PodSpec, container and probe defaults are filled
    in and the pod starts Pending."""
    p = pod()
    p["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 5432}}
    p["spec"]["containers"][0]["env"] = [
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    p["status"] = {"phase": "Running"}
    out, errs = create(POD, p)
    assert errs == []
    spec, ctr = out["spec"], out["spec"]["containers"][0]
    assert (spec["restartPolicy"], spec["dnsPolicy"], spec["terminationGracePeriodSeconds"]) == (
        "Always", "ClusterFirst", 30)
    assert spec["schedulerName"] == "default-scheduler" and spec["enableServiceLinks"] is True
    assert ctr["terminationMessagePath"] == "/dev/termination-log"
    assert ctr["terminationMessagePolicy"] == "File" and ctr["imagePullPolicy"] == "IfNotPresent"
    assert ctr["readinessProbe"] == {"tcpSocket": {"port": 5432}, "timeoutSeconds": 1, "periodSeconds": 10,
                                     "successThreshold": 1, "failureThreshold": 3}
    assert ctr["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert out["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(
    "image,policy", [("busybox", "Always"), ("busybox:latest", "Always"), ("busybox:1.36", "IfNotPresent"),
                     ("reg:5000/busybox", "Always"), ("busybox@sha256:abc", "IfNotPresent")],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    """Given an image reference, then imagePullPolicy defaults as Kubernetes decides it."""
    out, _ = create(POD, pod(containers=[{"name": "a", "image": image}]))
    assert out["spec"]["containers"][0]["imagePullPolicy"] == policy


@pytest.mark.parametrize(
    "spec,path",
    [
        ({"containers": []}, "spec.containers"),
        ({"containers": [{"name": "a"}]}, "spec.containers[0].image"),
        ({"containers": [{"image": "x"}]}, "spec.containers[0].name"),
        ({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]},
         "spec.containers[1].name"),
        ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 0}]}]},
         "spec.containers[0].ports[0].containerPort"),
        ({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "name": "HTTP"}]}]},
         "spec.containers[0].ports[0].name"),
        ({"containers": [{"name": "a", "image": "x", "readinessProbe": {"periodSeconds": 1}}]},
         "spec.containers[0].readinessProbe"),
        ({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/d"}]}]},
         "spec.containers[0].volumeMounts[0].name"),
        ({"restartPolicy": "Sometimes"}, "spec.restartPolicy"),
        ({"hostname": "Bad_Host"}, "spec.hostname"),
        ({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"cpu": "1"},
                                                                   "requests": {"cpu": "2"}}}]},
         "spec.containers[0].resources.requests"),
        ({"containers": [{"name": "a", "image": "x", "resources": {"limits": {"memory": "lots"}}}]},
         "spec.containers[0].resources.limits[memory]"),
    ],
    ids=["no-containers", "no-image", "no-name", "dup-name", "port-zero", "port-name", "no-handler",
         "unknown-volume", "restart", "hostname", "request-over-limit", "bad-quantity"],
)
def test_validation_paths(spec: dict, path: str) -> None:
    """Given an invalid pod spec, then the error carries Kubernetes' field path."""
    _, errs = create(POD, pod(**spec))
    assert path in fields(errs), errs


def test_spec_is_mostly_immutable() -> None:
    """Given a stored pod, then changing an image is allowed but other spec fields are not, and
    binding (setting nodeName once) is allowed."""
    old, _ = create(POD, pod())
    new = pod()
    new["spec"]["containers"][0]["image"] = "busybox:1.37"
    _, errs = update(POD, new, old)
    assert errs == []
    _, errs = update(POD, pod(restartPolicy="Never"), old)
    assert [(e.field, e.reason) for e in errs] == [("spec", "FieldValueForbidden")]
    assert errs[0].message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`")
    bound, errs = update(POD, pod(nodeName="node-1"), old)
    assert errs == []
    _, errs = update(POD, pod(nodeName="node-2"), bound)
    assert fields(errs) == ["spec"]


def test_grace_period() -> None:
    """Given pods in several states, then graceful deletion applies only to scheduled, unfinished pods."""
    unscheduled, _ = create(POD, pod())
    assert POD.strategy.deletion_grace_seconds(unscheduled, None) == 0
    running, _ = create(POD, pod(nodeName="n1", terminationGracePeriodSeconds=5))
    assert POD.strategy.deletion_grace_seconds(running, None) == 5
    assert POD.strategy.deletion_grace_seconds(running, 0) == 0
    running["status"]["phase"] = "Succeeded"
    assert POD.strategy.deletion_grace_seconds(running, None) == 0


def test_selectable_fields() -> None:
    """Given a pod, then its selectable fields read as strings (booleans as true/false)."""
    p, _ = create(POD, pod(nodeName="n1"))
    assert POD.strategy.field_value(p, "spec.nodeName") == "n1"
    assert POD.strategy.field_value(p, "status.phase") == "Pending"
    assert POD.strategy.field_value(p, "spec.hostNetwork") == "false"
    assert POD.strategy.field_value(p, "status.podIP") == ""


def test_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a running pod with a restart, then READY/STATUS/RESTARTS/IP/NODE read as kubectl's."""
    _printing.set_clock(lambda: 1_700_000_300.0)
    try:
        p = pod(nodeName="n1", readinessGates=[{"conditionType": "x"}])
        p["metadata"]["creationTimestamp"] = "2023-11-14T22:00:00Z"
        p["status"] = {
            "phase": "Running", "podIP": "10.244.0.5",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "x", "status": "True"}],
            "containerStatuses": [{
                "name": "app", "ready": True, "restartCount": 2, "state": {"running": {}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2023-11-14T22:13:20Z"}},
            }],
        }
        assert POD.strategy.cells(p) == ["1/1", "Running", "2 (5m ago)", "10.244.0.5", "n1", "<none>", "1/1"]
        p["status"]["containerStatuses"][0] = {"name": "app", "ready": False, "restartCount": 0,
                                               "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
        assert POD.strategy.cells(p)[:3] == ["0/1", "CrashLoopBackOff", "0"]
        p["metadata"]["deletionTimestamp"] = "2023-11-14T22:13:20Z"
        assert POD.strategy.cells(p)[1] == "Terminating"
    finally:
        _printing.set_clock(None)


def test_resources_messages() -> None:
    """Given requests above limits, then the message is Kubernetes'; equal values are fine."""
    res = {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}
    _, errs = create(POD, pod(containers=[{"name": "a", "image": "x", "resources": res}]))
    assert [e.message for e in errs] == [
        'Invalid value: "1": must be less than or equal to cpu limit of 500m']
    res["requests"]["cpu"] = "0.5"
    out, errs = create(POD, pod(containers=[{"name": "a", "image": "x", "resources": res}]))
    assert errs == [] and out["status"]["qosClass"] == "Guaranteed"
    res["requests"]["memory"] = "512Mi"
    out, _ = create(POD, pod(containers=[{"name": "a", "image": "x", "resources": res}]))
    assert out["status"]["qosClass"] == "Burstable"
