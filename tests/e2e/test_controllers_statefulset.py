"""End to end: `podns apiserver` + `podns controller-manager` + a stand-in kubelet, driven by the
real kubectl: the headless-service StatefulSet story of issue 4."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ._controllers_e2e import ControllerManagerProcess, FakeKubelet, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MANIFEST = """
apiVersion: v1
kind: Service
metadata: {name: db-service}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432, targetPort: pg}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db-service
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: db:1
        ports: [{name: pg, containerPort: 15432}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
"""


@pytest.fixture
def cluster(start_podns: Callable[..., Any], tmp_path: Path) -> Iterator[Any]:
    api = start_podns(command="apiserver")
    cm = ControllerManagerProcess(api.controller_manager_kubeconfig, tmp_path, "--node-grace-period", "60s")
    yield api
    code = cm.stop()
    assert code == 0, cm.log()


def kjson(api: Any, *args: str) -> Any:
    out = api.kubectl(*args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def pods(api: Any) -> dict[str, Any]:
    return {p["metadata"]["name"]: p for p in kjson(api, "get", "pods")["items"]}


def test_statefulset_lifecycle_with_kubectl(cluster: Any) -> None:
    """Given a headless Service and a StatefulSet with a claim template, then `kubectl rollout
    status` completes with db-0..2 created in order, each with its claim, hostname and
    subdomain; slices list the three ready pods with hostnames and the named port resolved;
    a deleted pod comes back with the same name and claim; scaling down removes db-2 first;
    `set image` rolls the set and `rollout undo` rolls it back; `kubectl describe` shows the
    controller's events; deleting the set (background cascade) removes pods and revisions but
    keeps the claims."""
    api = cluster
    with FakeKubelet(api.kubeconfig, "n1", labels={"topology.kubernetes.io/zone": "z1"}):
        r = api.kubectl("apply", "--validate=false", "-f", "-", input=MANIFEST)
        assert r.returncode == 0, r.stderr
        r = api.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
        assert r.returncode == 0, r.stdout + r.stderr
        got = pods(api)
        assert sorted(got) == ["db-0", "db-1", "db-2"]
        order = sorted(got, key=lambda n: got[n]["metadata"]["creationTimestamp"] + n)
        assert order == ["db-0", "db-1", "db-2"]
        p1 = got["db-1"]
        assert p1["spec"]["hostname"] == "db-1" and p1["spec"]["subdomain"] == "db-service"
        assert p1["spec"]["nodeName"] == "n1"
        assert p1["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "db-1"
        assert p1["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == "1"
        vols = {v["name"]: v for v in p1["spec"]["volumes"]}
        assert vols["data"]["persistentVolumeClaim"]["claimName"] == "data-db-1"
        claims = [c["metadata"]["name"] for c in kjson(api, "get", "pvc")["items"]]
        assert sorted(claims) == ["data-db-0", "data-db-1", "data-db-2"]
        eventually(lambda: {c["status"].get("phase") for c in kjson(api, "get", "pvc")["items"]} == {"Bound"})

        def slice_view() -> dict[str, Any]:
            sel = "kubernetes.io/service-name=db-service"
            items = kjson(api, "get", "endpointslices", "-l", sel)["items"]
            return {e["hostname"]: (e["conditions"]["ready"], s["ports"][0]["port"], e.get("zone"))
                    for s in items for e in s.get("endpoints") or []}

        want = {f"db-{i}": (True, 15432, "z1") for i in range(3)}
        eventually(lambda: slice_view() == want)

        uid = got["db-1"]["metadata"]["uid"]
        assert api.kubectl("delete", "pod", "db-1", "--wait=false").returncode == 0
        eventually(lambda: (p := pods(api).get("db-1")) is not None and p["metadata"]["uid"] != uid
                         and p.get("status", {}).get("phase") == "Running")
        back = pods(api)["db-1"]
        assert {v["name"]: v for v in back["spec"]["volumes"]}["data"]["persistentVolumeClaim"][
            "claimName"] == "data-db-1"

        assert api.kubectl("scale", "statefulset", "db", "--replicas=2").returncode == 0
        eventually(lambda: sorted(pods(api)) == ["db-0", "db-1"])
        assert len(kjson(api, "get", "pvc")["items"]) == 3  # whenScaled: Retain (default)

        r = api.kubectl("set", "image", "statefulset/db", "db=db:2")
        assert r.returncode == 0, r.stderr
        r = api.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
        assert r.returncode == 0, r.stdout + r.stderr
        images = {n: p["spec"]["containers"][0]["image"] for n, p in pods(api).items()}
        assert images == {"db-0": "db:2", "db-1": "db:2"}
        sts = kjson(api, "get", "statefulset", "db")
        st = sts["status"]
        assert st["currentRevision"] == st["updateRevision"] and st["readyReplicas"] == 2
        assert len(kjson(api, "get", "controllerrevisions")["items"]) == 2

        # rollback: the old revision is reused and becomes the newest
        r = api.kubectl("rollout", "undo", "statefulset/db")
        assert r.returncode == 0, r.stderr
        r = api.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
        assert r.returncode == 0, r.stdout + r.stderr
        eventually(lambda: {p["spec"]["containers"][0]["image"] for p in pods(api).values()} == {"db:1"})
        revisions = {r["revision"] for r in kjson(api, "get", "controllerrevisions")["items"]}
        assert revisions == {2, 3}

        events = kjson(api, "get", "events")["items"]
        reasons = {(e["involvedObject"]["name"], e["reason"]) for e in events}
        assert ("db", "SuccessfulCreate") in reasons and ("db", "SuccessfulDelete") in reasons
        assert ("db-0", "Scheduled") in reasons
        described = api.kubectl("describe", "statefulset", "db")
        assert described.returncode == 0, described.stderr
        assert "SuccessfulCreate" in described.stdout and "statefulset-controller" in described.stdout

        # background cascade (kubectl's default): the garbage collector removes pods and
        # revisions; claims stay (whenDeleted: Retain)
        assert api.kubectl("delete", "statefulset", "db", "--wait=false").returncode == 0
        eventually(lambda: not pods(api) and not kjson(api, "get", "controllerrevisions")["items"])
        assert len(kjson(api, "get", "pvc")["items"]) == 3
