"""RBAC over HTTP: the four kinds (validation, tables), the authorizer fed by the store's watch,
403 wording, reviews (can-i, whoami) and impersonation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.conftest import Api

RBAC = "/apis/rbac.authorization.k8s.io/v1"
ROLES = f"{RBAC}/namespaces/default/roles"
BINDINGS = f"{RBAC}/namespaces/default/rolebindings"
SA = "system:serviceaccount:default:app"
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@pytest.fixture
def api(real_api: Api) -> Api:
    """The server with the real registry (the RBAC and review kinds)."""
    return real_api


async def synced(api: Api) -> None:
    """Until the authorizer's index reflects every write so far (its watch lags a little)."""
    rv = await api.server.store.current_rv()
    for _ in range(200):
        if api.server.authorizer.synced_rv >= rv:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the RBAC index did not catch up")


async def can_i(api: Api, verb: str, resource: str, *, as_user: str | None = None,
                group: str = "", ns: str = "default") -> bool:
    headers = {"Impersonate-User": as_user} if as_user else None
    r = await api.post(SSAR, {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                              "spec": {"resourceAttributes": {"verb": verb, "resource": resource,
                                                              "group": group, "namespace": ns}}},
                       headers=headers)
    assert r.status == 201, r.body
    return bool(r.body["status"]["allowed"])


def role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": name},
            "rules": rules}


def binding(name: str, role_name: str, kind: str = "Role") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role_name},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "default"}]}


async def test_binding_grants_and_deleting_it_revokes(api: Api) -> None:
    """A ServiceAccount may watch EndpointSlices only once a RoleBinding grants it; a binding to
    a missing role grants nothing; deleting the binding takes the right away again."""
    assert not await can_i(api, "watch", "endpointslices", as_user=SA, group="discovery.k8s.io")
    r = await api.post(BINDINGS, binding("dangling", "no-such-role"))
    assert r.status == 201, r.body
    await synced(api)
    assert not await can_i(api, "watch", "endpointslices", as_user=SA, group="discovery.k8s.io")
    r = await api.post(ROLES, role("reader", [{"verbs": ["get", "list", "watch"],
                                               "apiGroups": ["discovery.k8s.io"],
                                               "resources": ["endpointslices"]}]))
    assert r.status == 201, r.body
    assert (await api.post(BINDINGS, binding("reads", "reader"))).status == 201
    await synced(api)
    assert await can_i(api, "watch", "endpointslices", as_user=SA, group="discovery.k8s.io")
    assert not await can_i(api, "list", "secrets", as_user=SA)
    assert not await can_i(api, "watch", "endpointslices", as_user=SA, group="discovery.k8s.io",
                           ns="kube-system")
    # the real request, made as the account, agrees with the review
    hdr = {"Impersonate-User": SA}
    assert (await api.get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                          headers=hdr)).status == 200
    r = await api.get("/api/v1/namespaces/default/secrets", headers=hdr)
    assert r.status == 403
    assert r.body["message"] == (f'secrets is forbidden: User "{SA}" cannot list resource "secrets" '
                                 'in API group "" in the namespace "default"')
    assert (await api.delete(f"{BINDINGS}/reads")).status == 200
    await synced(api)
    assert not await can_i(api, "watch", "endpointslices", as_user=SA, group="discovery.k8s.io")


async def test_readonly_is_view_without_secrets(api: Api) -> None:
    """The read-only token reads what `view` reads (and Nodes), never Secrets."""
    assert (await api.get("/api/v1/namespaces/default/pods", token="readonly")).status == 200
    assert (await api.get("/api/v1/nodes", token="readonly")).status == 200
    r = await api.get("/api/v1/namespaces/default/secrets", token="readonly")
    assert r.status == 403 and r.body["message"] == (
        'secrets is forbidden: User "readonly" cannot list resource "secrets" in API group "" '
        'in the namespace "default"')
    r = await api.get("/api/v1/namespaces/default/secrets/x", token="readonly")
    assert r.body["message"].startswith('secrets "x" is forbidden: User "readonly" cannot get')


async def test_impersonation_needs_the_impersonate_verb(api: Api) -> None:
    """The read-only user may not impersonate; groups without a user are refused."""
    r = await api.get("/api/v1/namespaces/default/pods", token="readonly",
                      headers={"Impersonate-User": "admin"})
    assert r.status == 403 and r.body["message"] == (
        'users "admin" is forbidden: User "readonly" cannot impersonate resource "users" in API '
        'group "" at the cluster scope')
    r = await api.get("/api/v1/namespaces/default/pods", headers={"Impersonate-Group": "x"})
    assert r.status == 400


async def test_whoami_and_masters(api: Api) -> None:
    """SelfSubjectReview answers the (impersonated) user; system:masters may do anything."""
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    r = await api.post(path, body)
    assert r.status == 201 and r.body["status"]["userInfo"] == {
        "username": "admin", "groups": ["system:masters", "system:authenticated"]}
    r = await api.post(path, body, headers={"Impersonate-User": SA})
    assert r.body["status"]["userInfo"] == {"username": SA, "groups": [
        "system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}
    assert await can_i(api, "escalate", "roles", group="rbac.authorization.k8s.io")
    r = await api.post(SSAR, {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                              "spec": {}})
    assert r.status == 422 and r.body["message"] == (
        'SelfSubjectAccessReview "" is invalid: spec.resourceAttributes: Invalid value: null: '
        "exactly one of nonResourceAttributes or resourceAttributes must be specified")


async def test_validation_messages_and_paths(api: Api) -> None:
    """Kubernetes' RBAC validation: rule fields, roleRef, subjects, immutable roleRef."""
    r = await api.post(ROLES, role("bad", [{"verbs": [], "resources": ["pods"]},
                                           {"verbs": ["get"], "nonResourceURLs": ["/x"]}]))
    assert r.status == 422
    assert [c["field"] for c in r.body["details"]["causes"]] == [
        "rules[0].verbs", "rules[0].apiGroups", "rules[1].nonResourceURLs"]
    assert r.body["details"]["causes"][2]["message"] == (
        'Invalid value: ["/x"]: namespaced rules cannot apply to non-resource URLs')
    b = binding("b", "r")
    b["roleRef"]["kind"] = "Pod"
    b["subjects"] = [{"kind": "Robot", "name": "x"}, {"kind": "User", "name": "u", "apiGroup": "x"}]
    r = await api.post(BINDINGS, b)
    assert r.status == 422
    assert [(c["field"], c["reason"]) for c in r.body["details"]["causes"]] == [
        ("roleRef.kind", "FieldValueNotSupported"), ("subjects[0].kind", "FieldValueNotSupported"),
        ("subjects[1].apiGroup", "FieldValueNotSupported")]
    crb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "c"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                  "kind": "Role", "name": "r"},
           "subjects": [{"kind": "ServiceAccount", "name": "x"}]}
    r = await api.post(f"{RBAC}/clusterrolebindings", crb)
    assert [c["field"] for c in r.body["details"]["causes"]] == ["roleRef.kind", "subjects[0].namespace"]
    # a User subject's apiGroup is defaulted; roleRef may not change
    ok = binding("ok", "r")
    ok["subjects"] = [{"kind": "User", "name": "system:u"}]
    r = await api.post(BINDINGS, ok)
    assert r.status == 201 and r.body["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    r = await api.call("PATCH", f"{BINDINGS}/ok", {"roleRef": {"name": "other"}},
                       content_type="application/merge-patch+json")
    assert r.status == 422 and r.body["details"]["causes"][0]["field"] == "roleRef"


async def test_default_roles_reconciled(api: Api) -> None:
    """The defaults exist after start; a removed default rule comes back on the next start."""
    r = await api.get(f"{RBAC}/clusterroles/view")
    assert r.status == 200
    assert not any("secrets" in rule.get("resources", []) for rule in r.body["rules"])
    r = await api.get(f"{RBAC}/clusterrolebindings/cluster-admin")
    assert r.body["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                   "name": "system:masters"}]
    r = await api.call("PATCH", f"{RBAC}/clusterroles/view", {"rules": []},
                       content_type="application/merge-patch+json")
    assert r.status == 200 and r.body["rules"] == []
    from podns.api.handlers import rbacpolicy
    from podns.api.resources.registry import REGISTRY
    await rbacpolicy.reconcile(api.server.rest, REGISTRY.by_kind("rbac.authorization.k8s.io", "ClusterRole"),  # type: ignore[arg-type]
                               REGISTRY.by_kind("rbac.authorization.k8s.io", "ClusterRoleBinding"))  # type: ignore[arg-type]
    r = await api.get(f"{RBAC}/clusterroles/view")
    assert r.body["rules"] == rbacpolicy.VIEW_RULES


async def test_role_table_columns(api: Api) -> None:
    """kubectl's columns: NAME, ROLE, AGE (+ USERS, GROUPS, SERVICEACCOUNTS wide)."""
    assert (await api.post(BINDINGS, binding("t", "x"))).status == 201
    r = await api.get(BINDINGS, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert [c["name"] for c in r.body["columnDefinitions"]] == [
        "Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    row = r.body["rows"][0]["cells"]
    assert row[0] == "t" and row[1] == "Role/x" and row[5] == "default/app"


async def test_creating_roles_and_bindings_cannot_escalate(api: Api) -> None:
    """A namespace admin (the `admin` ClusterRole through a RoleBinding) may create Roles and
    bindings within its rights, not beyond: a rule on Nodes, a binding to cluster-admin."""
    dana = {"Impersonate-User": "dana"}
    rb = binding("dana-admin", "admin", "ClusterRole")
    rb["subjects"] = [{"kind": "User", "name": "dana", "apiGroup": "rbac.authorization.k8s.io"}]
    assert (await api.post(BINDINGS, rb)).status == 201
    await synced(api)
    ok = role("pods", [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
    assert (await api.post(ROLES, ok, headers=dana)).status == 201
    r = await api.post(ROLES, role("nodes", [{"verbs": ["get"], "apiGroups": [""],
                                              "resources": ["nodes"]}]), headers=dana)
    assert r.status == 403 and r.body["message"] == (
        'roles.rbac.authorization.k8s.io "nodes" is forbidden: user "dana" '
        '(groups=["system:authenticated"]) '
        'is attempting to grant RBAC permissions not currently held: '
        '{"apiGroups":[""],"resources":["nodes"],"verbs":["get"]}')
    assert (await api.post(BINDINGS, binding("to-view", "view", "ClusterRole"), headers=dana)).status == 201
    r = await api.post(BINDINGS, binding("to-ca", "cluster-admin", "ClusterRole"), headers=dana)
    assert r.status == 403 and "attempting to grant RBAC permissions not currently held" in r.body["message"]
    r = await api.post(BINDINGS, binding("to-missing", "nope"), headers=dana)
    assert r.status == 403


async def test_updating_and_patching_roles_and_bindings_cannot_escalate(api: Api) -> None:
    """given a namespace admin and a Role it made, adding a rule on Nodes to it is 403
    (Kubernetes' wording) whether replaced, merge- or JSON-patched, and so is adding itself to
    a binding of cluster-admin; a change within its rights, or of nothing that grants, passes."""
    dana = {"Impersonate-User": "dana"}
    rb = binding("dana-admin", "admin", "ClusterRole")
    rb["subjects"] = [{"kind": "User", "name": "dana", "apiGroup": "rbac.authorization.k8s.io"}]
    assert (await api.post(BINDINGS, rb)).status == 201
    await synced(api)
    pods = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
    nodes = {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}
    made = await api.post(ROLES, role("r", [pods]), headers=dana)
    assert made.status == 201
    denied = ('roles.rbac.authorization.k8s.io "r" is forbidden: user "dana" '
              '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
              'currently held: {"apiGroups":[""],"resources":["nodes"],"verbs":["get"]}')
    r = await api.put(f"{ROLES}/r", {**made.body, "rules": [pods, nodes]}, headers=dana)
    assert r.status == 403 and r.body["message"] == denied
    r = await api.patch(f"{ROLES}/r", {"rules": [pods, nodes]}, headers=dana)
    assert r.status == 403 and r.body["message"] == denied
    r = await api.patch(f"{ROLES}/r", [{"op": "add", "path": "/rules/-", "value": nodes}],
                        ptype="json", headers=dana)
    assert r.status == 403 and r.body["message"] == denied
    # within its rights, or nothing that grants (an owner reference): allowed
    widened = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
    assert (await api.patch(f"{ROLES}/r", {"rules": [widened]}, headers=dana)).status == 200
    assert (await api.patch(f"{ROLES}/r", {"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u1"}]}},
        headers=dana)).status == 200
    # bindings: a subject added to a binding of a role within dana's rights passes, to one of
    # cluster-admin (made by the admin) is refused
    me = [{"kind": "User", "name": "dana", "apiGroup": "rbac.authorization.k8s.io"}]
    assert (await api.post(BINDINGS, binding("b", "view", "ClusterRole"), headers=dana)).status == 201
    assert (await api.patch(f"{BINDINGS}/b", {"subjects": me}, headers=dana)).status == 200
    assert (await api.post(BINDINGS, binding("ca", "cluster-admin", "ClusterRole"))).status == 201
    r = await api.patch(f"{BINDINGS}/ca", {"subjects": me}, headers=dana)
    assert r.status == 403 and "attempting to grant RBAC permissions not currently held" in r.body["message"]
    # the admin (system:masters) is never checked
    assert (await api.patch(f"{ROLES}/r", {"rules": [pods, nodes]})).status == 200


async def test_aggregation_rule_needs_escalate(api: Api) -> None:
    """given a user who may create ClusterRoles but not escalate, a ClusterRole with an
    aggregationRule is 403 'must have cluster-admin privileges to use an aggregationRule'."""
    cr_admin = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "cr-writer"},
                "rules": [{"verbs": ["create", "get"], "apiGroups": ["rbac.authorization.k8s.io"],
                           "resources": ["clusterroles"]}]}
    assert (await api.post(f"{RBAC}/clusterroles", cr_admin)).status == 201
    crb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
           "metadata": {"name": "erin-cr-writer"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr-writer"},
           "subjects": [{"kind": "User", "name": "erin", "apiGroup": "rbac.authorization.k8s.io"}]}
    assert (await api.post(f"{RBAC}/clusterrolebindings", crb)).status == 201
    await synced(api)
    agg = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "agg"},
           "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}, "rules": []}
    r = await api.post(f"{RBAC}/clusterroles", agg, headers={"Impersonate-User": "erin"})
    assert r.status == 403 and r.body["message"] == (
        'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin '
        "privileges to use an aggregationRule")
