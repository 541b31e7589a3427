"""End to end: EndpointSlices and Endpoints from readiness, node lifecycle, garbage collection and
leader election between two `podns controller-manager` processes, over the real API server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ._controllers_e2e import ControllerManagerProcess, FakeKubelet, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SERVICE_AND_SET = """
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: web-peers}
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:1}]}
"""


def kjson(api: Any, *args: str) -> Any:
    out = api.kubectl(*args, "-o", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def endpoints(api: Any, service: str) -> dict[str, bool]:
    items = kjson(api, "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]
    return {e["targetRef"]["name"]: e["conditions"]["ready"] for s in items for e in s.get("endpoints") or []}


def names(listing: dict[str, Any]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in listing["items"])


def holder(api: Any) -> str:
    return str(kjson(api, "get", "lease", "-n", "kube-system", "kube-controller-manager")["spec"]
               .get("holderIdentity") or "")


def ready_of(obj: dict[str, Any]) -> str:
    return next(c["status"] for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_readiness_node_loss_and_cascading_delete(start_podns: Callable[..., Any], tmp_path: Path) -> None:
    """Given a Parallel set behind two headless Services (one publishing not-ready addresses),
    then a pod turning unready leaves `web`'s ready endpoints but stays ready in `web-peers`, and
    moves to notReadyAddresses in the legacy Endpoints; when the node stops heartbeating, it
    becomes Ready=Unknown and its pods unready; deleting the set with --cascade=orphan keeps the
    pods (owner reference removed), and deleting a Service removes its slices."""
    api = start_podns(command="apiserver")
    cm = ControllerManagerProcess(api.controller_manager_kubeconfig, tmp_path, "--node-grace-period", "2s")
    try:
        with FakeKubelet(api.kubeconfig, "n1", ready=lambda p: p["metadata"]["name"] != "web-1") as kubelet:
            assert api.kubectl("apply", "--validate=false", "-f", "-", input=SERVICE_AND_SET).returncode == 0
            eventually(lambda: endpoints(api, "web") == {"web-0": True, "web-1": False})
            eventually(lambda: endpoints(api, "web-peers") == {"web-0": True, "web-1": True})
            ep = kjson(api, "get", "endpoints", "web")
            assert [a["targetRef"]["name"] for a in ep["subsets"][0]["addresses"]] == ["web-0"]
            assert [a["targetRef"]["name"] for a in ep["subsets"][0]["notReadyAddresses"]] == ["web-1"]

            kubelet.heartbeating = False
            eventually(lambda: ready_of(kjson(api, "get", "node", "n1")) == "Unknown", timeout=15)
            eventually(lambda: endpoints(api, "web") == {"web-0": False, "web-1": False})
            assert ready_of(kjson(api, "get", "pod", "web-0")) == "False"
            kubelet.heartbeating = True

            r = api.kubectl("delete", "statefulset", "web", "--cascade=orphan")
            assert r.returncode == 0, r.stderr
            eventually(lambda: not kjson(api, "get", "statefulsets")["items"])
            time.sleep(0.5)
            left = kjson(api, "get", "pods")["items"]
            assert sorted(p["metadata"]["name"] for p in left) == ["web-0", "web-1"]
            assert all(not p["metadata"].get("ownerReferences") for p in left)

            assert api.kubectl("delete", "service", "web").returncode == 0
            eventually(lambda: not kjson(api, "get", "endpointslices", "-l",
                                         "kubernetes.io/service-name=web")["items"])
            # the selectorless Service's Endpoints stay, beside the API servers' own (`kubernetes`)
            eventually(lambda: names(kjson(api, "get", "endpoints")) == ["kubernetes", "web-peers"])
    finally:
        assert cm.stop() == 0, cm.log()


def test_foreground_cascade_and_leader_failover(start_podns: Callable[..., Any], tmp_path: Path) -> None:
    """Given two controller managers with leader election, then one holds the Lease and acts;
    after it is killed the other takes over and keeps reconciling; a foreground delete of a set
    removes its pods before the set itself disappears."""
    api = start_podns(command="apiserver")
    args = ("--node-grace-period", "60s", "--leader-elect-lease-duration", "3s",
            "--leader-elect-renew-deadline", "2s", "--leader-elect-retry-period", "0.5s")
    first = ControllerManagerProcess(api.controller_manager_kubeconfig, tmp_path, *args, name="cm-a")
    second = None
    try:
        first_holder = eventually(lambda: holder(api))
        second = ControllerManagerProcess(api.controller_manager_kubeconfig, tmp_path, *args, name="cm-b")
        with FakeKubelet(api.kubeconfig, "n1"):
            assert api.kubectl("apply", "--validate=false", "-f", "-", input=SERVICE_AND_SET).returncode == 0
            eventually(lambda: endpoints(api, "web") == {"web-0": True, "web-1": True})
            first.kill()  # no release: the follower waits out the lease duration
            eventually(lambda: holder(api) not in (first_holder, ""), timeout=20)
            assert api.kubectl("scale", "statefulset", "web", "--replicas=3").returncode == 0
            eventually(lambda: endpoints(api, "web") == {"web-0": True, "web-1": True, "web-2": True})

            r = api.kubectl("delete", "statefulset", "web", "--cascade=foreground", "--wait=false")
            assert r.returncode == 0, r.stderr
            eventually(lambda: not kjson(api, "get", "statefulsets")["items"])
            assert not kjson(api, "get", "pods")["items"]
            assert not kjson(api, "get", "controllerrevisions")["items"]
    finally:
        first.kill()
        if second is not None:
            assert second.stop() == 0, second.log()
