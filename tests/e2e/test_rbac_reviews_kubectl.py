"""RBAC with real kubectl, second part: `kubectl auth can-i --list` (SelfSubjectRulesReview) on
1.27 and 1.33, `kubectl auth whoami` on 1.27 (authentication.k8s.io/v1beta1), escalation refused
on patch and apply of an existing Role and binding, LocalSubjectAccessReview, and the ClusterRole
aggregation controller extending `view` (and through it `edit` and `admin`) with a labelled
ClusterRole."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests._support import wait_until

from .conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150),
              pytest.mark.podns_args("--no-node", "--no-dns")]


def out(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_can_i_list(podns_module: Podns, version: str) -> None:
    """given a ServiceAccount bound to a Role reading EndpointSlices, `kubectl auth can-i --list
    --as` that account prints that rule beside the self-review and discovery rules every
    authenticated user has, and nothing about Secrets."""
    p, ns = podns_module, f"list-{version.replace('.', '-')}"
    k = p.kubectl
    out(k("create", "namespace", ns, version=version))
    out(k("create", "role", "endpoint-reader", "-n", ns, "--verb=get,list,watch",
          "--resource=endpointslices.discovery.k8s.io", version=version))
    out(k("create", "rolebinding", "app-reads", "-n", ns, "--role=endpoint-reader",
          f"--serviceaccount={ns}:app", version=version))
    sa = f"system:serviceaccount:{ns}:app"

    def listed() -> list[list[str]]:
        return rows(out(k("auth", "can-i", "--list", "-n", ns, f"--as={sa}", version=version)))

    wait_until(lambda: ["endpointslices.discovery.k8s.io", "[]", "[]", "[get", "list", "watch]"] in listed(),
               10, "the binding in can-i --list")
    table = listed()
    assert table[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in table
    assert ["selfsubjectrulesreviews.authorization.k8s.io", "[]", "[]", "[create]"] in table
    assert ["[/version]", "[]", "[get]"] in table
    assert not any("secrets" in r[0] for r in table)
    # the admin (system:masters, bound to cluster-admin) can do everything
    admin = rows(out(k("auth", "can-i", "--list", "-n", ns, version=version)))
    assert ["*.*", "[]", "[]", "[*]"] in admin


def test_whoami_on_kubectl_127(podns_module: Podns) -> None:
    """given kubectl 1.27, which asks authentication.k8s.io/v1beta1 for its SelfSubjectReview,
    `kubectl auth whoami` prints the user and groups, also when impersonating."""
    p = podns_module
    table = rows(out(p.kubectl("auth", "whoami", version="1.27")))
    assert ["Username", "admin"] in table
    assert ["Groups", "[system:masters", "system:authenticated]"] in table
    doc = json.loads(out(p.kubectl("auth", "whoami", "-o", "json", "--as=erin", version="1.27")))
    assert doc["apiVersion"] == "authentication.k8s.io/v1beta1"
    assert doc["status"]["userInfo"] == {"username": "erin", "groups": ["system:authenticated"]}


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_escalation_refused_on_patch_and_apply(podns_module: Podns, version: str) -> None:
    """given dana, admin of one namespace, and a Role she made, patching or applying it with a
    rule on Nodes is 403 with Kubernetes' wording, and so is adding herself to a binding of
    cluster-admin; patching within her rights works."""
    p, ns = podns_module, f"esc-{version.replace('.', '-')}"
    k = p.kubectl
    out(k("create", "namespace", ns, version=version))
    out(k("create", "rolebinding", "dana-admin", "-n", ns, "--clusterrole=admin", "--user=dana",
          version=version))
    wait_until(lambda: k("auth", "can-i", "create", "roles", "-n", ns, "--as=dana",
                         version=version).stdout.strip() == "yes", 10, "dana's binding")
    out(k("create", "role", "r", "-n", ns, "--verb=get", "--resource=pods", "--as=dana", version=version))
    nodes = {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}
    denied = ('roles.rbac.authorization.k8s.io "r" is forbidden: user "dana" '
              '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
              'currently held:')
    r = k("patch", "role", "r", "-n", ns, "--as=dana", "--type=json",
          "-p", json.dumps([{"op": "add", "path": "/rules/-", "value": nodes}]), version=version)
    assert r.returncode == 1 and denied in r.stderr, r.stderr
    manifest = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "r", "namespace": ns},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}, nodes]}
    r = k("apply", "-f", "-", "--as=dana", input=json.dumps(manifest), version=version)
    assert r.returncode == 1 and denied in r.stderr, r.stderr
    out(k("patch", "role", "r", "-n", ns, "--as=dana", "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["services"],
                                                     "verbs": ["list"]}}]), version=version))
    out(k("create", "rolebinding", "ca", "-n", ns, "--clusterrole=cluster-admin", "--user=someone",
          version=version))
    r = k("patch", "rolebinding", "ca", "-n", ns, "--as=dana", "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/subjects/-", "value": {"apiGroup": "rbac.authorization.k8s.io",
                                                        "kind": "User", "name": "dana"}}]),
          version=version)
    assert r.returncode == 1 and "attempting to grant RBAC permissions not currently held" in r.stderr


def test_local_subject_access_review(podns_module: Podns) -> None:
    """given dana, admin of a namespace, a LocalSubjectAccessReview there answers whether
    another user may act in it; one naming another namespace is 400."""
    p, ns = podns_module, "lsar"
    out(p.kubectl("create", "namespace", ns))
    out(p.kubectl("create", "rolebinding", "dana-admin", "-n", ns, "--clusterrole=admin", "--user=dana"))
    out(p.kubectl("create", "rolebinding", "erin-view", "-n", ns, "--clusterrole=view", "--user=erin"))
    path = f"/apis/authorization.k8s.io/v1/namespaces/{ns}/localsubjectaccessreviews"

    def review(verb: str, resource: str, namespace: str = ns) -> subprocess.CompletedProcess[str]:
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
                "metadata": {"namespace": ns},
                "spec": {"user": "erin", "resourceAttributes": {"verb": verb, "resource": resource,
                                                                 "namespace": namespace}}}
        return p.kubectl("create", "--raw", path, "-f", "-", "--as=dana", input=json.dumps(body))

    wait_until(lambda: review("list", "pods").returncode == 0, 10, "dana's binding")
    assert json.loads(out(review("list", "pods")))["status"]["allowed"] is True
    assert json.loads(out(review("list", "secrets")))["status"]["allowed"] is False
    r = review("list", "pods", namespace="default")
    assert r.returncode == 1 and "spec.resourceAttributes.namespace must match namespace: lsar" in r.stderr


def test_aggregation_extends_view_edit_admin(podns_module: Podns) -> None:
    """given the aggregation controller, a ClusterRole labelled aggregate-to-view adds its rule
    (reading Leases, which view lacks) to `view`, and through view's own labels to `edit` and
    `admin`; the readonly user (bound to view) gains the right; deleting the labelled role takes
    it away again."""
    p = podns_module
    lease_rule = {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                  "verbs": ["get", "list", "watch"]}
    extra = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "lease-viewer",
                          "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
             "rules": [lease_rule]}

    def has_rule(role: str) -> bool:
        return lease_rule in json.loads(out(p.kubectl("get", "clusterrole", role, "-o", "json")))["rules"]

    assert not has_rule("view")
    out(p.kubectl("apply", "-f", "-", input=json.dumps(extra)))
    for role in ("view", "edit", "admin"):
        wait_until(lambda role=role: has_rule(role), 20, f"the lease rule aggregated into {role}")
    wait_until(lambda: p.kubectl("auth", "can-i", "list", "leases.coordination.k8s.io",
                                 kubeconfig=p.readonly_kubeconfig).stdout.strip() == "yes",
               10, "readonly may list leases")
    out(p.kubectl("delete", "clusterrole", "lease-viewer"))
    for role in ("view", "edit", "admin"):
        wait_until(lambda role=role: not has_rule(role), 20, f"the lease rule gone from {role}")
    wait_until(lambda: p.kubectl("auth", "can-i", "list", "leases.coordination.k8s.io",
                                 kubeconfig=p.readonly_kubeconfig).stdout.strip() == "no",
               10, "readonly may no longer list leases")
