"""Everyday kubectl commands that did not work against podns, under real kubectl 1.27 (JSON
bodies, v2beta1 discovery) and 1.33 (protobuf bodies, v2 discovery), against one `podns up`
(loopback pods running Python one-liners):

- `kubectl autoscale` (an autoscaling/v1 HPA, stored as v2) and HPA manifests in autoscaling/v2;
  `get`/`describe hpa` in both versions; TARGETS as a cluster without metrics shows them; the
  HPA controller keeping its target within min/max; `get --subresource=scale`;
- `kubectl create ingress`, Ingress and IngressClass manifests, `get`/`describe ingress`, and a
  missing pathType refused with Kubernetes' field path;
- `kubectl rollout history/undo daemonset` (the DaemonSet controller keeps ControllerRevisions);
- `kubectl get/describe pv`: the volume provisioned for each claim, hand-written volumes;
- ReplicationControllers (run by the replication manager), which `apply --prune` without an
  allowlist and `cluster-info dump` need (with PersistentVolumes and Ingresses);
- the official Python client decoding those kinds.

The checks of every command found working are listed in docs/kubectl.md."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from tests._support import wait_until
from tests.e2e.test_workloads import DAEMONSET

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240),
              pytest.mark.podns_args("--pod-network", "loopback")]

VERSIONS = ["1.27", "1.33"]


def ok(api: Any, *args: str, version: str = "1.33", input: str | None = None) -> str:
    r = api.kubectl(*args, version=version, input=input, timeout=120)
    assert r.returncode == 0, f"kubectl.{version} {' '.join(args)}: {r.stdout}{r.stderr}"
    return str(r.stdout)


def fails(api: Any, *args: str, version: str = "1.33", input: str | None = None) -> str:
    r = api.kubectl(*args, version=version, input=input, timeout=120)
    assert r.returncode != 0, f"kubectl.{version} {' '.join(args)} succeeded: {r.stdout}"
    return str(r.stderr)


def kjson(api: Any, *args: str, version: str = "1.33") -> Any:
    return json.loads(ok(api, *args, "-o", "json", version=version))


def header(out: str) -> list[str]:
    """kubectl's column titles (a title may contain one space: MIN AVAILABLE)."""
    return [t.strip() for t in out.splitlines()[0].split("  ") if t.strip()]


def cells(out: str, name: str) -> list[str]:
    """The cells of the row named `name`, split on kubectl's two-space column gaps."""
    line = next(line for line in out.splitlines()[1:] if line.split()[0] == name)
    return [c.strip() for c in line.split("  ") if c.strip()]


HPA_V2 = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: NAME}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: TARGET}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 500Mi}}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 60}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_autoscale_and_hpa_manifests(podns_module: Any, version: str) -> None:
    """Given a Deployment, `kubectl autoscale --min=2 --max=5 --cpu-percent=70` creates an HPA
    (autoscaling/v1 from kubectl, served in v2 too, CPU 70% as a v2 metric); `get hpa` shows
    Kubernetes' columns with `cpu: <unknown>/70%` (no Metrics API); `describe hpa` works; a v2
    manifest with a memory metric and a behavior applies, gets Kubernetes' behavior defaults and
    reads back in v1 with the metric in the v1 annotation."""
    api = podns_module
    name = f"scaled{version.replace('.', '')}"
    ok(api, "create", "deployment", name, "--image=nginx", "--replicas=0", version=version)
    out = ok(api, "autoscale", f"deployment/{name}", "--min=2", "--max=5", "--cpu-percent=70",
             version=version)
    assert out.strip() == f"horizontalpodautoscaler.autoscaling/{name} autoscaled"
    v2 = kjson(api, "get", f"horizontalpodautoscalers.v2.autoscaling/{name}", version=version)
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["minReplicas"] == 2 and v2["spec"]["maxReplicas"] == 5
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    v1 = kjson(api, "get", f"horizontalpodautoscalers.v1.autoscaling/{name}", version=version)
    assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 70
    table = ok(api, "get", "hpa", name, version=version)
    assert header(table) == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    assert cells(table, name)[:6] == [name, f"Deployment/{name}", "cpu: <unknown>/70%", "2", "5", "0"]
    described = ok(api, "describe", "hpa", name, version=version)
    assert "Reference:" in described and f"Deployment/{name}" in described
    assert "Min replicas:" in described and "Max replicas:" in described

    manifest = HPA_V2.replace("NAME", f"{name}-mem").replace("TARGET", name)
    ok(api, "apply", "-f", "-", input=manifest, version=version)
    stored = kjson(api, "get", f"horizontalpodautoscalers.v2.autoscaling/{name}-mem", version=version)
    assert stored["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert stored["spec"]["behavior"]["scaleUp"]["policies"] == [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]
    old = kjson(api, "get", f"horizontalpodautoscalers.v1.autoscaling/{name}-mem", version=version)
    assert "targetCPUUtilizationPercentage" not in old["spec"]
    assert json.loads(old["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]) == \
        stored["spec"]["metrics"]
    assert "memory: <unknown>/500Mi" in ok(api, "get", "hpa", f"{name}-mem", version=version)
    bad = HPA_V2.replace("NAME", f"{name}-bad").replace("TARGET", name).replace(
        "minReplicas: 1", "minReplicas: 9")
    err = fails(api, "apply", "-f", "-", input=bad, version=version)
    assert "spec.maxReplicas: Invalid value: 4: must be greater than or equal to `minReplicas`" in err
    ok(api, "delete", "hpa", name, f"{name}-mem", version=version)
    ok(api, "delete", "deployment", name, version=version)


def test_autoscaler_keeps_its_target_within_bounds(podns_module: Any) -> None:
    """Given a Deployment of 1 replica, `kubectl autoscale --min=2 --max=3` scales it to 2 through
    its scale subresource (no metrics API needed, as in Kubernetes); the HPA shows 2 replicas, a
    SuccessfulRescale event and ScalingActive False for want of CPU metrics; scaling the
    Deployment to 5 by hand brings it back to 3."""
    api = podns_module
    sleep = [sys.executable, "-c", "import time; time.sleep(3600)"]
    ok(api, "create", "deployment", "bounded", "--image=nginx", "--replicas=1", "--", *sleep)
    ok(api, "autoscale", "deployment/bounded", "--min=2", "--max=3")
    wait_until(lambda: kjson(api, "get", "deployment", "bounded")["spec"]["replicas"] == 2, 60,
               "scaled to minReplicas")
    wait_until(lambda: cells(ok(api, "get", "hpa", "bounded"), "bounded")[5] == "2", 60,
               "the HPA's REPLICAS at 2")
    described = ok(api, "describe", "hpa", "bounded")
    assert "New size: 2; reason: Current number of replicas below Spec.MinReplicas" in described
    ok(api, "scale", "deployment/bounded", "--replicas=5")
    wait_until(lambda: kjson(api, "get", "deployment", "bounded")["spec"]["replicas"] == 3, 60,
               "scaled back to maxReplicas")
    conditions = {c["type"]: c for c in kjson(api, "get", "hpa", "bounded")["status"]["conditions"]}
    assert conditions["AbleToScale"]["status"] == "True"
    wait_until(lambda: {c["type"]: c["reason"] for c in kjson(api, "get", "hpa", "bounded")["status"]
                        ["conditions"]}.get("ScalingActive") == "FailedGetResourceMetric", 60,
               "ScalingActive False without metrics")
    ok(api, "delete", "hpa", "bounded")
    ok(api, "delete", "deployment", "bounded")


INGRESS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: CLASS}
spec: {controller: example.com/ingress-controller}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: NAME}
spec:
  ingressClassName: CLASS
  tls: [{hosts: [NAME.example.com], secretName: NAME-tls}]
  rules:
  - host: NAME.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_ingress_commands(podns_module: Any, version: str) -> None:
    """Given `kubectl create ingress` (1.33: a protobuf body) and an Ingress + IngressClass
    manifest, then `get ingress` prints CLASS HOSTS ADDRESS PORTS as Kubernetes, `describe`
    lists the rules, an Ingress path without pathType is refused with its field path, and once
    the class is annotated as the default a new Ingress without a class gets it."""
    api = podns_module
    n = version.replace(".", "")
    out = ok(api, "create", "ingress", f"simple{n}", f"--rule=shop{n}.example.com/*=web:80",
             version=version)
    assert out.strip() == f"ingress.networking.k8s.io/simple{n} created"
    created = kjson(api, "get", "ingress", f"simple{n}", version=version)
    assert created["spec"]["rules"] == [{"host": f"shop{n}.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]
    manifest = INGRESS.replace("CLASS", f"class{n}").replace("NAME", f"tls{n}")
    out = ok(api, "apply", "-f", "-", input=manifest, version=version)
    assert f"ingressclass.networking.k8s.io/class{n} created" in out
    table = ok(api, "get", "ingress", version=version)
    assert header(table) == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    assert cells(table, f"simple{n}")[:4] == [f"simple{n}", "<none>", f"shop{n}.example.com", "80"]
    assert cells(table, f"tls{n}")[:4] == [f"tls{n}", f"class{n}", f"tls{n}.example.com", "80, 443"]
    classes = ok(api, "get", "ingressclass", f"class{n}", version=version)
    assert header(classes) == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
    assert cells(classes, f"class{n}")[:3] == [f"class{n}", "example.com/ingress-controller", "<none>"]
    described = ok(api, "describe", "ingress", f"tls{n}", version=version)
    assert "Rules:" in described and f"tls{n}.example.com" in described
    bad = manifest.replace("pathType: Prefix, ", "")
    err = fails(api, "apply", "-f", "-", input=bad, version=version)
    assert "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified" in err
    ok(api, "annotate", "ingressclass", f"class{n}", "ingressclass.kubernetes.io/is-default-class=true",
       version=version)
    ok(api, "create", "ingress", f"dflt{n}", "--default-backend=web:80", version=version)
    defaulted = kjson(api, "get", "ingress", f"dflt{n}", version=version)
    assert defaulted["spec"]["ingressClassName"] == f"class{n}"
    ok(api, "delete", "ingress", f"simple{n}", f"tls{n}", f"dflt{n}", version=version)
    ok(api, "delete", "ingressclass", f"class{n}", version=version)


@pytest.mark.parametrize("version", VERSIONS)
def test_daemonset_rollout_history_and_undo(podns_module: Any, version: str) -> None:
    """Given a DaemonSet rolled to a second image, then `rollout history` lists revisions 1 and
    2 (with `--revision` showing the template), `rollout undo` brings the first image back as
    revision 3 (the old revision renumbered, not duplicated) and `rollout status` completes."""
    api = podns_module
    name = f"hist{version.replace('.', '')}"
    manifest = DAEMONSET.replace("NAME", name).replace("PYTHON", json.dumps(sys.executable))
    ok(api, "apply", "-f", "-", input=manifest, version=version)
    ok(api, "rollout", "status", f"daemonset/{name}", "--timeout=90s", version=version)
    ok(api, "set", "image", f"daemonset/{name}", "agent=agent:2", version=version)
    ok(api, "rollout", "status", f"daemonset/{name}", "--timeout=90s", version=version)

    def revisions() -> list[str]:
        out = ok(api, "rollout", "history", f"daemonset/{name}", version=version)
        return [line.split()[0] for line in out.splitlines()[2:] if line.strip()]

    wait_until(lambda: revisions() == ["1", "2"], 30, "revisions 1 and 2")
    first = ok(api, "rollout", "history", f"daemonset/{name}", "--revision=1", version=version)
    assert "agent:1" in first
    out = ok(api, "rollout", "undo", f"daemonset/{name}", version=version)
    assert out.strip() == f"daemonset.apps/{name} rolled back"
    ok(api, "rollout", "status", f"daemonset/{name}", "--timeout=90s", version=version)
    ds = kjson(api, "get", "daemonset", name, version=version)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:1"
    wait_until(lambda: revisions() == ["2", "3"], 30, "revisions 2 and 3")
    owned = [r for r in kjson(api, "get", "controllerrevisions", "-l", f"app={name}",
                              version=version)["items"]]
    assert len(owned) == 2 and all(r["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
                                   for r in owned)
    ok(api, "delete", "daemonset", name, version=version)


def test_python_client_decodes_hpa_ingress_and_volumes(podns_module: Any) -> None:
    """The official Python client (strict pydantic models) reads HPAs in autoscaling/v2 and v1,
    Ingresses/IngressClasses, PersistentVolumes and ReplicationController lists, so every field
    it requires is present."""
    from kubernetes import client, config

    api = podns_module
    ok(api, "create", "deployment", "pyscaled", "--image=nginx", "--replicas=0")
    ok(api, "autoscale", "deployment/pyscaled", "--max=3")
    ok(api, "apply", "-f", "-", input=INGRESS.replace("CLASS", "pyclass").replace("NAME", "pying"))
    ok(api, "apply", "-f", "-", input=CLAIM.replace("NAME", "pyclaim"))
    wait_until(lambda: any((v["spec"].get("claimRef") or {}).get("name") == "pyclaim"
                           for v in kjson(api, "get", "pv")["items"]), 30, "the claim's volume")
    c = config.new_client_from_config(str(api.kubeconfig))
    v2 = client.AutoscalingV2Api(c).read_namespaced_horizontal_pod_autoscaler("pyscaled", "default")
    assert v2.spec.metrics[0].resource.target.average_utilization == 80
    assert v2.status.desired_replicas == 0
    v1 = client.AutoscalingV1Api(c).list_namespaced_horizontal_pod_autoscaler("default").items
    assert [h.spec.target_cpu_utilization_percentage for h in v1 if h.metadata.name == "pyscaled"] == [80]
    net = client.NetworkingV1Api(c)
    assert net.read_namespaced_ingress("pying", "default").spec.ingress_class_name == "pyclass"
    assert [i.spec.controller for i in net.list_ingress_class().items if i.metadata.name == "pyclass"] == [
        "example.com/ingress-controller"]
    core = client.CoreV1Api(c)
    assert core.list_namespaced_replication_controller("default").kind == "ReplicationControllerList"
    volumes = core.list_persistent_volume().items
    assert any(v.spec.claim_ref and v.spec.claim_ref.name == "pyclaim" for v in volumes)
    ok(api, "delete", "pvc", "pyclaim")
    ok(api, "delete", "hpa", "pyscaled")
    ok(api, "delete", "deployment", "pyscaled")
    ok(api, "delete", "ingress", "pying")
    ok(api, "delete", "ingressclass", "pyclass")


CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: NAME}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
HAND_VOLUME = """
apiVersion: v1
kind: PersistentVolume
metadata: {name: NAME}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadOnlyMany]
  hostPath: {path: /srv/data}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_persistent_volumes(podns_module: Any, version: str) -> None:
    """Given a claim, then `kubectl get pv` shows the volume provisioned for it (Bound, the claim,
    reclaim policy Delete, its capacity) and deleting the claim deletes it; a hand-written
    hostPath volume is Available with Kubernetes' default reclaim policy; one without a source is
    refused with Kubernetes' message."""
    api = podns_module
    n = version.replace(".", "")
    ok(api, "apply", "-f", "-", input=CLAIM.replace("NAME", f"data{n}"), version=version)
    claim = wait_until(lambda: (c := kjson(api, "get", "pvc", f"data{n}", version=version))
                       ["status"].get("phase") == "Bound" and c, 30, "claim bound")
    volume = claim["spec"]["volumeName"]
    assert volume == f"pvc-{claim['metadata']['uid']}"
    table = wait_until(lambda: (t := api.kubectl("get", "pv", volume, version=version)).returncode == 0
                       and "Bound" in t.stdout and t.stdout, 30, "provisioned volume Bound")
    assert header(table)[:7] == ["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM",
                                 "STORAGECLASS"]
    assert cells(table, volume)[:6] == [volume, "1Gi", "RWO", "Delete", "Bound", f"default/data{n}"]
    described = ok(api, "describe", "pv", volume, version=version)
    assert "podns.io/node-local" in described and f"default/data{n}" in described
    ok(api, "delete", "pvc", f"data{n}", version=version)
    wait_until(lambda: api.kubectl("get", "pv", volume, version=version).returncode != 0, 30,
               "provisioned volume deleted with its claim")

    ok(api, "apply", "-f", "-", input=HAND_VOLUME.replace("NAME", f"hand{n}"), version=version)
    wait_until(lambda: "Available" in ok(api, "get", "pv", f"hand{n}", version=version), 30,
               "hand-written volume Available")
    got = kjson(api, "get", "pv", f"hand{n}", version=version)
    assert got["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert got["spec"]["volumeMode"] == "Filesystem"
    bad = HAND_VOLUME.replace("NAME", f"bad{n}").replace("  hostPath: {path: /srv/data}\n", "")
    err = fails(api, "apply", "-f", "-", input=bad, version=version)
    assert "spec: Required value: must specify a volume type" in err
    ok(api, "delete", "pv", f"hand{n}", version=version)


RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: NAME}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: NAME}}
    spec:
      containers:
      - {name: main, image: sleeper, command: PYTHON_SLEEP}
"""
PRUNED = """
apiVersion: v1
kind: ConfigMap
metadata: {name: NAME-a, namespace: NS, labels: {set: NAME}}
data: {k: a}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: NAME-b, namespace: NS, labels: {set: NAME}}
data: {k: b}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_replicationcontroller_prune_and_cluster_info_dump(podns_module: Any, version: str) -> None:
    """Given a ReplicationController, then its selector and labels default to the template's,
    it runs 2 pods, `scale rc` and `get rc` work and deleting it deletes its pods; `apply --prune`
    with kubectl's default kinds (no allowlist) prunes what left the manifest; `cluster-info dump`
    lists every kind it asks for."""
    api = podns_module
    n = version.replace(".", "")
    name = f"legacy{n}"
    sleep = json.dumps([sys.executable, "-c", "import time; time.sleep(3600)"])
    ok(api, "apply", "-f", "-", input=RC.replace("NAME", name).replace("PYTHON_SLEEP", sleep),
       version=version)
    rc = kjson(api, "get", "rc", name, version=version)
    assert rc["spec"]["selector"] == {"app": name} and rc["metadata"]["labels"] == {"app": name}

    def pods() -> list[str]:
        return [p["metadata"]["name"] for p in kjson(api, "get", "pods", "-l", f"app={name}")["items"]
                if not p["metadata"].get("deletionTimestamp")]

    wait_until(lambda: len(pods()) == 2, 60, "2 pods")
    owner = kjson(api, "get", "pod", pods()[0], version=version)["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ReplicationController", name, True)
    ok(api, "scale", "rc", name, "--replicas=1", version=version)
    wait_until(lambda: len(pods()) == 1, 60, "scaled to 1 pod")
    scale = ok(api, "get", "rc", name, "--subresource=scale", version=version)
    assert header(scale) == ["NAME", "DESIRED", "AVAILABLE", "AGE"] and cells(scale, name)[1] == "1"
    table = ok(api, "get", "rc", name, "-o", "wide", version=version)
    assert header(table) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert cells(table, name)[1] == "1" and cells(table, name)[-1] == f"app={name}"

    ns = f"prune{n}"
    ok(api, "create", "namespace", ns, version=version)
    both = PRUNED.replace("NAME", name).replace("NS", ns)
    ok(api, "apply", "--prune", "-l", f"set={name}", "-f", "-", input=both, version=version)
    first = both.split("---")[0]
    out = ok(api, "apply", "--prune", "-l", f"set={name}", "-f", "-", input=first, version=version)
    assert f"configmap/{name}-b pruned" in out
    assert [c["metadata"]["name"] for c in kjson(api, "get", "cm", "-n", ns, "-l", f"set={name}",
                                                   version=version)["items"]] == [f"{name}-a"]
    dump = ok(api, "cluster-info", "dump", f"--namespaces={ns}", version=version)
    for kind in ("NodeList", "EventList", "ReplicationControllerList", "ServiceList", "DaemonSetList",
                 "DeploymentList", "ReplicaSetList", "PodList"):
        assert f'"kind": "{kind}"' in dump, kind
    ok(api, "delete", "namespace", ns, "--wait=false", version=version)
    ok(api, "delete", "rc", name, version=version)
    wait_until(lambda: not pods(), 60, "the controller's pods deleted with it")
