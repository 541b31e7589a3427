"""One object per served kind: protobuf encode -> decode gives back the JSON object.

Each object is written the way a Go client's JSON would carry it, exercising that kind's
special fields (pointer zeros, IntOrString, Quantity, Time/MicroTime, bytes, inline structs,
RawExtension). The decoded dict must contain every field of the original with the same value;
anything extra may only be what Go's encoding/json adds on its own (`{}` for non-pointer
structs, `null` creationTimestamp); and decoding is a fixed point.
"""

from __future__ import annotations

from typing import Any

import pytest

from podns.api.encoding import protobuf

META = {"name": "x", "namespace": "ns", "labels": {"app": "x"}, "annotations": {"a/b": ""},
        "uid": "6d1c9a0e-0000-4000-8000-000000000001", "resourceVersion": "42", "generation": 3,
        "creationTimestamp": "2024-01-02T03:04:05Z",
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                             "uid": "u-1", "controller": True, "blockOwnerDeletion": False}],
        "finalizers": ["kubernetes.io/pvc-protection"]}

POD_SPEC = {
    "volumes": [
        {"name": "scratch", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "conf", "configMap": {"name": "cm", "defaultMode": 420, "optional": False,
                                        "items": [{"key": "a", "path": "a.txt"}]}},
    ],
    "containers": [{
        "name": "app", "image": "python:3", "command": ["python", "-m", "http.server"],
        "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"}],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                              "fieldPath": "status.podIP"}}},
                {"name": "EMPTY"}],
        "resources": {"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}},
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/app", "readOnly": True}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8000}, "initialDelaySeconds": 5},
    }],
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 0,
    "hostname": "db-0",
    "subdomain": "db",
    "automountServiceAccountToken": False,
    "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute",
                     "tolerationSeconds": 0}],
}

OBJECTS: list[tuple[str, dict[str, Any]]] = [
    ("Namespace", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    ("Service", {"apiVersion": "v1", "kind": "Service", "metadata": META, "spec": {
        "clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "db"},
        "publishNotReadyAddresses": True, "type": "ClusterIP", "sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
        "ports": [{"name": "pg", "port": 5432, "targetPort": "pg", "protocol": "TCP",
                   "appProtocol": "postgresql"},
                  {"name": "zero-target", "port": 9000, "targetPort": 0}]},
        "status": {"loadBalancer": {}}}),
    ("Pod", {"apiVersion": "v1", "kind": "Pod", "metadata": META, "spec": POD_SPEC, "status": {
        "phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
        "startTime": "2024-01-02T03:04:06Z",
        "conditions": [{"type": "Ready", "status": "True",
                        "lastTransitionTime": "2024-01-02T03:04:07Z", "lastProbeTime": None}],
        "containerStatuses": [{"name": "app", "ready": True, "restartCount": 0, "image": "python:3",
                               "imageID": "", "started": True,
                               "state": {"running": {"startedAt": "2024-01-02T03:04:06Z"}},
                               "lastState": {}}]}}),
    ("Node", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {
        "podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"],
        "taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                    "timeAdded": "2024-01-02T03:04:05Z"}]},
        "status": {"capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                   "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "conditions": [{"type": "Ready", "status": "True",
                                   "lastHeartbeatTime": "2024-01-02T03:04:05Z"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                   "nodeInfo": {"kubeletVersion": "v1.33.0-podns", "machineID": "", "systemUUID": "",
                                "bootID": "", "kernelVersion": "", "osImage": "",
                                "containerRuntimeVersion": "", "kubeProxyVersion": "",
                                "operatingSystem": "linux", "architecture": "amd64"}}}),
    ("Event", {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "db.1", "namespace": "ns"},
               "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "db-0", "uid": "u"},
               "reason": "Started", "message": "started", "type": "Normal", "count": 2,
               "source": {"component": "podns-node", "host": "node-1"},
               "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:04:09Z",
               "eventTime": "2024-01-02T03:04:05.123456Z", "reportingComponent": "podns",
               "reportingInstance": "node-1"}),
    ("Endpoints", {"apiVersion": "v1", "kind": "Endpoints", "metadata": META, "subsets": [{
        "addresses": [{"ip": "10.244.0.5", "hostname": "db-0", "nodeName": "node-1",
                       "targetRef": {"kind": "Pod", "name": "db-0", "namespace": "ns"}}],
        "notReadyAddresses": [{"ip": "10.244.0.6"}],
        "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}),
    ("ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": META,
                   "data": {"a": "b", "empty": ""}, "binaryData": {"bin": "AAEC/w=="},
                   "immutable": False}),
    ("Secret", {"apiVersion": "v1", "kind": "Secret", "metadata": META, "type": "Opaque",
                "data": {"password": "aHVudGVyMg==", "empty": ""}, "stringData": {"user": "me"}}),
    ("PersistentVolumeClaim", {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": META,
                               "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                                        "volumeMode": "Filesystem",
                                        "resources": {"requests": {"storage": "1Gi"}}},
                               "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}),
    ("ServiceAccount", {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": META,
                        "secrets": [{"name": "tok"}], "automountServiceAccountToken": False}),
    ("EndpointSlice", {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                       "metadata": {"name": "db-abc", "namespace": "ns",
                                    "labels": {"kubernetes.io/service-name": "db"}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.244.0.5"], "hostname": "db-0",
                                      "nodeName": "node-1",
                                      "conditions": {"ready": False, "serving": True,
                                                     "terminating": False},
                                      "targetRef": {"kind": "Pod", "name": "db-0", "namespace": "ns"}}],
                       "ports": [{"name": "", "port": 5432, "protocol": "TCP"}]}),
    ("StatefulSet", {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": META, "spec": {
        "replicas": 0, "serviceName": "db", "podManagementPolicy": "Parallel",
        "selector": {"matchLabels": {"app": "db"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
        "template": {"metadata": {"labels": {"app": "db", "tier": "a"}}, "spec": POD_SPEC},
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0,
                                                                      "maxUnavailable": "50%"}},
        "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}},
        "status": {"replicas": 0, "observedGeneration": 3, "currentRevision": "db-1",
                   "updateRevision": "db-1", "collisionCount": 0, "availableReplicas": 0}}),
    ("ControllerRevision", {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": META,
                            "data": {"spec": {"template": {"$patch": "replace",
                                                           "spec": {"containers": []}}}},
                            "revision": 1}),
    ("Lease", {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "podns-controller-manager", "namespace": "kube-system"},
               "spec": {"holderIdentity": "cm-1", "leaseDurationSeconds": 15,
                        "acquireTime": "2024-01-02T03:04:05.000001Z",
                        "renewTime": "2024-01-02T03:04:20.999999Z", "leaseTransitions": 0}}),
    ("Scale", {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": META,
               "spec": {"replicas": 3}, "status": {"replicas": 0, "selector": "app=db"}}),
    ("DeleteOptions", {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions",
                       "gracePeriodSeconds": 0, "propagationPolicy": "Foreground",
                       "preconditions": {"uid": "u-1", "resourceVersion": "42"},
                       "dryRun": ["All"], "orphanDependents": False}),
    ("Deployment", {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": META, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": POD_SPEC},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}}}),
]


def contains(outer: Any, inner: Any, path: str = "") -> None:
    """Assert every field of `inner` is in `outer` with an equal value (recursively)."""
    if isinstance(inner, dict):
        assert isinstance(outer, dict), path
        for k, v in inner.items():
            assert k in outer, f"{path}.{k} lost"
            contains(outer[k], v, f"{path}.{k}")
    elif isinstance(inner, list):
        assert isinstance(outer, list) and len(outer) == len(inner), path
        for i, (o, v) in enumerate(zip(outer, inner, strict=True)):
            contains(o, v, f"{path}[{i}]")
    else:
        assert outer == inner and type(outer) is type(inner), f"{path}: {outer!r} != {inner!r}"


def extras_are_go_zero(outer: Any, inner: Any, path: str = "") -> None:
    """Assert what `outer` has beyond `inner` is only what Go's JSON adds by itself."""
    if isinstance(outer, dict):
        for k, v in outer.items():
            if isinstance(inner, dict) and k in inner:
                extras_are_go_zero(v, inner[k], f"{path}.{k}")
            else:
                assert v in (None, {}, 0, "", False) or _all_zero(v), f"{path}.{k} = {v!r} invented"
    elif isinstance(outer, list):
        for i, (o, v) in enumerate(zip(outer, inner, strict=True)):
            extras_are_go_zero(o, v, f"{path}[{i}]")


def _all_zero(v: Any) -> bool:
    if isinstance(v, dict):
        return all(_all_zero(x) for x in v.values())
    return v in (None, 0, "", False, {}, [])


@pytest.mark.parametrize("obj", [o for _k, o in OBJECTS], ids=[k for k, _o in OBJECTS])
def test_kind_round_trips(obj: dict[str, Any]) -> None:
    """Given a JSON object of a served kind, when sent as protobuf, then the server decodes
    every field it carried, invents nothing but Go's own zero structs, and is a fixed point."""
    body = protobuf.encode(obj)
    assert body.startswith(b"k8s\x00")
    decoded = protobuf.decode(body, expect=(obj["apiVersion"], obj["kind"]))
    contains(decoded, obj)
    extras_are_go_zero(decoded, obj)
    assert protobuf.decode(protobuf.encode(decoded)) == decoded
    assert protobuf.encode(decoded) == body


def test_every_served_kind_has_a_table_row() -> None:
    """The kinds podns serves (and Deployment, for a clean 404) are all decodable."""
    kinds = {k for _v, k in protobuf.supported_kinds()}
    assert {k for k, _o in OBJECTS} <= kinds


def test_go_json_zero_value_rules() -> None:
    """Given an object with only a name, then the decoded form is what Go's JSON writes for it:
    non-pointer structs as {}, the zero Time as null, omitempty zeros dropped, and
    non-omitempty zeros (StatefulSet serviceName, ServicePort port) kept."""
    sts = protobuf.decode(protobuf.encode(
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"}}))
    assert sts["metadata"] == {"name": "s", "creationTimestamp": None}
    assert sts["spec"]["serviceName"] == ""
    assert sts["spec"]["selector"] is None  # *LabelSelector without omitempty
    assert sts["spec"]["template"] == {"metadata": {"creationTimestamp": None},
                                       "spec": {"containers": None}}
    assert "replicas" not in sts["spec"]  # *int32, omitempty, unset
    assert sts["status"] == {"replicas": 0, "availableReplicas": 0}
    svc = protobuf.decode(protobuf.encode(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
         "spec": {"ports": [{"port": 80}]}}))
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 0}]
