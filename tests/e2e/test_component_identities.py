"""Components run with their own identities and Kubernetes' narrow rights, proven with the
audit log of a real `podns up` and real kubectl using the components' kubeconfigs: the
controller manager as `system:kube-controller-manager`, the node agent as `system:node:<name>`
(the Node authorizer: only its own pods' Secrets, its own Node, its pods' status), the cluster
DNS as `system:podns-dns`; no component uses the admin token."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests._support import wait_until

from .conftest import Podns

NODE = "idn1"
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180),
              pytest.mark.podns_args("--node-name", NODE, "--audit-log", "audit.log")]


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def own(p: Podns, name: str) -> Path:
    return p.data_dir / name


def audit(p: Podns) -> list[dict[str, Any]]:
    lines = (p.workdir / "audit.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def requests_by(p: Podns, user: str) -> list[tuple[str, str, str, int]]:
    """(verb, resource[/subresource], namespace, code) of every request `user` made."""
    found = []
    for ev in audit(p):
        if ev["user"]["username"] != user or "objectRef" not in ev:
            continue
        ref = ev["objectRef"]
        res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        found.append((ev["verb"], res, ref.get("namespace", ""), ev["responseStatus"]["code"]))
    return found


SECRET_POD = """
apiVersion: v1
kind: Secret
metadata: {name: mine}
stringData: {password: s3cret}
---
apiVersion: v1
kind: Secret
metadata: {name: theirs}
stringData: {password: other}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: uses-mine}
spec:
  replicas: 1
  selector: {matchLabels: {app: uses-mine}}
  template:
    metadata: {labels: {app: uses-mine}}
    spec:
      containers:
      - name: c
        image: busybox
        command: ["sleep", "3600"]
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: mine, key: password}}
---
apiVersion: v1
kind: Node
metadata: {name: elsewhere}
---
apiVersion: v1
kind: Pod
metadata: {name: on-elsewhere}
spec:
  nodeName: elsewhere
  containers:
  - name: c
    image: busybox
    command: ["sleep", "3600"]
    envFrom:
    - secretRef: {name: theirs}
"""


@pytest.fixture(scope="module")
def cluster(podns_module: Podns) -> Podns:
    """The module's cluster with a Deployment whose pod (on this node) uses Secret `mine`, and a
    pod bound to another Node `elsewhere` using Secret `theirs`."""
    p = podns_module
    ok(p.kubectl("apply", "-f", "-", input=SECRET_POD))

    def running() -> bool:
        pods = json.loads(ok(p.kubectl("get", "pods", "-l", "app=uses-mine", "-o", "json")))["items"]
        return any(pod.get("status", {}).get("phase") == "Running" for pod in pods)

    wait_until(running, 60, "the Deployment's pod running on this node")
    return p


def test_each_component_has_its_own_kubeconfig_and_user(cluster: Podns) -> None:
    """given `podns up`, its data dir holds one 0600 kubeconfig per component, and each one
    authenticates (client certificate) as the component's user."""
    expected = {"controller-manager.kubeconfig": ("system:kube-controller-manager", []),
                "dns.kubeconfig": ("system:podns-dns", []),
                f"node-{NODE}.kubeconfig": (f"system:node:{NODE}", ["system:nodes"])}
    for name, (user, groups) in expected.items():
        path = own(cluster, name)
        assert path.stat().st_mode & 0o077 == 0, name
        review = json.loads(ok(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=path)))
        assert review["status"]["userInfo"]["username"] == user
        assert review["status"]["userInfo"]["groups"] == [*groups, "system:authenticated"]


def test_components_talk_to_the_api_as_themselves(cluster: Podns) -> None:
    """given the Deployment running, the audit log shows the controller manager creating its pod,
    the node agent reading the pod's Secret and writing its status, the DNS server listing
    Services, each as its own user; the admin user is only ever kubectl (this test)."""
    cm = "system:kube-controller-manager"
    wait_until(lambda: ("create", "pods", "default", 201) in requests_by(cluster, cm),
               30, "the controller manager's pod create in the audit log")
    node = requests_by(cluster, f"system:node:{NODE}")
    assert ("get", "secrets", "default", 200) in node
    assert any(r[:2] == ("patch", "pods/status") and r[3] == 200 for r in node)
    assert any(r[:2] == ("patch", "nodes/status") and r[3] == 200 for r in node)
    assert any(r[:2] == ("list", "services") for r in requests_by(cluster, "system:podns-dns"))
    admin_agents = {ev["userAgent"].split("/")[0] for ev in audit(cluster)
                    if ev["user"]["username"] == "admin" and "objectRef" in ev}
    assert admin_agents <= {"kubectl", "kubectl.1.33", "kubectl.1.27"}, admin_agents


def test_node_reads_only_its_own_pods_secrets(cluster: Podns) -> None:
    """given a node identity, reading the Secret of its own pod works; the Secret of a pod on
    another node, and listing Secrets, are 403 with the Node authorizer's reason."""
    kc = own(cluster, f"node-{NODE}.kubeconfig")
    assert "s3cret" not in ok(cluster.kubectl("get", "secret", "mine", "-o", "name", kubeconfig=kc)) \
        and "secret/mine" in ok(cluster.kubectl("get", "secret", "mine", "-o", "name", kubeconfig=kc))
    for version in ("1.33", "1.27"):
        r = cluster.kubectl("get", "secret", "theirs", kubeconfig=kc, version=version)
        assert r.returncode == 1
        assert (f'Error from server (Forbidden): secrets "theirs" is forbidden: User '
                f'"system:node:{NODE}" cannot get resource "secrets" in API group "" in the '
                f"namespace \"default\": no relationship found between node '{NODE}' and this "
                "object") in r.stderr, r.stderr
    r = cluster.kubectl("get", "secrets", kubeconfig=kc)
    assert r.returncode == 1 and "No Object name found" in r.stderr, r.stderr


def test_node_writes_only_its_own_node_and_pods(cluster: Podns) -> None:
    """given a node identity, labelling its own Node works; labelling another Node, writing
    the status of a pod bound elsewhere, deleting it or creating a (non-mirror) pod is 403 with
    NodeRestriction's wording."""
    kc = own(cluster, f"node-{NODE}.kubeconfig")
    ok(cluster.kubectl("label", "node", NODE, "authz-test=yes", "--overwrite", kubeconfig=kc))
    r = cluster.kubectl("label", "node", "elsewhere", "authz-test=yes", kubeconfig=kc)
    assert r.returncode == 1
    assert f'nodes "elsewhere" is forbidden: node "{NODE}" is not allowed to modify node "elsewhere"' \
        in r.stderr, r.stderr
    # a status update as the node agent sends it (kubectl patch --subresource would GET
    # pods/status first, which Kubernetes' node rules do not allow either)
    pod = ok(cluster.kubectl("get", "pod", "on-elsewhere", "-o", "json"))
    r = cluster.kubectl("replace", "--raw", "/api/v1/namespaces/default/pods/on-elsewhere/status",
                        "-f", "-", input=pod, kubeconfig=kc)
    assert r.returncode == 1
    assert (f'pods "on-elsewhere" is forbidden: node "{NODE}" can only update pod status for pods '
            "with spec.nodeName set to itself") in r.stderr, r.stderr
    r = cluster.kubectl("delete", "pod", "on-elsewhere", "--wait=false", kubeconfig=kc)
    assert r.returncode == 1 and "can only delete pods with spec.nodeName set to itself" in r.stderr
    r = cluster.kubectl("run", "sneaky", "--image=busybox", kubeconfig=kc)
    assert r.returncode == 1
    assert (f'pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" '
            f'annotation, node "{NODE}" can only create mirror pods') in r.stderr, r.stderr


@pytest.mark.parametrize(("kubeconfig", "allowed", "denied"), [
    ("dns.kubeconfig", [("list", "services"), ("watch", "endpointslices.discovery.k8s.io")],
     [("get", "secrets"), ("create", "pods"), ("list", "configmaps")]),
    ("controller-manager.kubeconfig", [("create", "pods"), ("delete", "replicasets.apps"),
                                       ("create", "endpointslices.discovery.k8s.io")],
     [("create", "clusterrolebindings.rbac.authorization.k8s.io"), ("create", "deployments.apps"),
      ("create", "services"), ("escalate", "roles.rbac.authorization.k8s.io")]),
], ids=["dns", "controller-manager"])
def test_component_rights_are_narrow(cluster: Podns, kubeconfig: str,
                                     allowed: list[tuple[str, str]], denied: list[tuple[str, str]]) -> None:
    """given the DNS and controller manager identities, `kubectl auth can-i` (their own
    SelfSubjectAccessReviews) says yes exactly to what Kubernetes grants them."""
    kc = own(cluster, kubeconfig)
    for verb, resource in allowed + denied:
        r = cluster.kubectl("auth", "can-i", verb, resource, kubeconfig=kc)
        assert r.stdout.strip() == ("yes" if (verb, resource) in allowed else "no"), (verb, resource)
