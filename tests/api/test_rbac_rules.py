"""The RBAC rule matcher and subject index (pure, table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from podns.api.handlers import rbacpolicy
from podns.api.handlers.authorization import Attributes, Rule, RuleIndex, UserInfo

ALICE = UserInfo("alice", ("devs", "system:authenticated"))


def attrs(verb: str, resource: str = "", *, group: str = "", sub: str = "", name: str = "",
          ns: str = "default", path: str = "") -> Attributes:
    if path:
        return Attributes(ALICE, verb, resource_request=False, path=path)
    return Attributes(ALICE, verb, namespace=ns, group=group, resource=resource, subresource=sub,
                      name=name)


RULE_CASES: list[tuple[str, dict[str, Any], Attributes, bool]] = [
    ("exact", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", "pods"), True),
    ("other verb", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
     attrs("list", "pods"), False),
    ("wildcard verb", {"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]},
     attrs("deletecollection", "pods"), True),
    ("other group", {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]},
     attrs("get", "pods"), False),
    ("wildcard group", {"verbs": ["get"], "apiGroups": ["*"], "resources": ["statefulsets"]},
     attrs("get", "statefulsets", group="apps"), True),
    ("wildcard resource", {"verbs": ["get"], "apiGroups": [""], "resources": ["*"]},
     attrs("get", "pods", sub="log"), True),
    ("resource does not cover subresource", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
     attrs("get", "pods", sub="log"), False),
    ("subresource", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
     attrs("get", "pods", sub="log"), True),
    ("subresource does not cover resource", {"verbs": ["get"], "apiGroups": [""],
                                             "resources": ["pods/log"]},
     attrs("get", "pods"), False),
    ("*/subresource", {"verbs": ["create"], "apiGroups": [""], "resources": ["*/exec"]},
     attrs("create", "pods", sub="exec"), True),
    ("resourceNames match", {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                             "resourceNames": ["a"]}, attrs("get", "secrets", name="a"), True),
    ("resourceNames other", {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"],
                             "resourceNames": ["a"]}, attrs("get", "secrets", name="b"), False),
    ("resourceNames list (no name)", {"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"],
                                      "resourceNames": ["a"]}, attrs("list", "secrets"), False),
    ("url exact", {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, attrs("get", path="/healthz"),
     True),
    ("url prefix", {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
     attrs("get", path="/apis/apps/v1"), True),
    ("url other", {"verbs": ["get"], "nonResourceURLs": ["/api"]}, attrs("get", path="/apis"), False),
    ("url rule vs resource", {"verbs": ["get"], "nonResourceURLs": ["*"]}, attrs("get", "pods"), False),
    ("resource rule vs url", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
     attrs("get", path="/metrics"), False),
]


@pytest.mark.parametrize(("rule", "request_", "allowed"), [c[1:] for c in RULE_CASES],
                         ids=[c[0] for c in RULE_CASES])
def test_rule_allows(rule: dict[str, Any], request_: Attributes, allowed: bool) -> None:
    assert Rule.from_obj(rule).allows(request_) is allowed


def role(name: str, rules: list[dict[str, Any]], ns: str = "") -> dict[str, Any]:
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": md, "rules": rules}


def binding(name: str, kind: str, ref: str, subjects: list[dict[str, Any]], ns: str = "") -> dict[str, Any]:
    md = {"name": name, **({"namespace": ns} if ns else {})}
    return {"metadata": md, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ref},
            "subjects": subjects}


READ_PODS = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
SA_APP = {"kind": "ServiceAccount", "name": "app", "namespace": "team"}
INDEX = RuleIndex.build(
    roles=[role("pod-reader", READ_PODS, "team")],
    cluster_roles=[role("view", rbacpolicy.VIEW_RULES),
                   role("edit", rbacpolicy.EDIT_RULES + rbacpolicy.VIEW_RULES)],
    bindings=[
        binding("app-reads", "Role", "pod-reader", [SA_APP], "team"),
        binding("devs-edit", "ClusterRole", "edit", [{"kind": "Group", "name": "devs"}], "dev"),
        binding("dangling", "Role", "missing", [{"kind": "User", "name": "bob"}], "team"),
    ],
    cluster_bindings=[binding("carol-view", "ClusterRole", "view", [{"kind": "User", "name": "carol"}])],
)
APP = UserInfo("system:serviceaccount:team:app", ("system:serviceaccounts",))

INDEX_CASES: list[tuple[str, UserInfo, str, str, str, str, bool]] = [
    # (id, user, verb, namespace, group, resource, allowed)
    ("sa via Role in its namespace", APP, "list", "team", "", "pods", True),
    ("sa elsewhere", APP, "list", "other", "", "pods", False),
    ("sa other resource", APP, "list", "team", "", "secrets", False),
    ("sa cluster-wide list", APP, "list", "", "", "pods", False),
    ("group via ClusterRole in a RoleBinding", ALICE, "create", "dev", "apps", "deployments", True),
    ("group binding is namespaced", ALICE, "create", "team", "apps", "deployments", False),
    ("edit reads secrets", ALICE, "get", "dev", "", "secrets", True),
    ("view everywhere", UserInfo("carol"), "watch", "any", "discovery.k8s.io", "endpointslices", True),
    ("view has no secrets", UserInfo("carol"), "list", "any", "", "secrets", False),
    ("view cannot write", UserInfo("carol"), "delete", "any", "", "pods", False),
    ("binding to a missing role", UserInfo("bob"), "get", "team", "", "pods", False),
    ("unbound user", UserInfo("mallory", ("system:authenticated",)), "get", "team", "", "pods", False),
]


@pytest.mark.parametrize(("user", "verb", "ns", "group", "resource", "allowed"),
                         [c[1:] for c in INDEX_CASES], ids=[c[0] for c in INDEX_CASES])
def test_index_allows(user: UserInfo, verb: str, ns: str, group: str, resource: str,
                      allowed: bool) -> None:
    a = Attributes(user, verb, namespace=ns, group=group, resource=resource)
    assert INDEX.allows(a) is allowed


def test_index_is_per_subject() -> None:
    """Each subject's rules are looked up by key, not found by scanning every binding."""
    assert set(INDEX.namespaced) == {("team", "u:system:serviceaccount:team:app"), ("dev", "g:devs")}
    assert set(INDEX.cluster) == {"u:carol"}
    assert list(INDEX.rules_for(UserInfo("nobody"), "team")) == []


def test_default_roles_match_kubernetes() -> None:
    """view reads but has no Secrets; edit writes Secrets; admin adds roles/bindings; cluster-admin all."""
    roles = {r["metadata"]["name"]: r for r in rbacpolicy.CLUSTER_ROLES}
    index = RuleIndex.build([], roles.values(), [], [
        binding(n, "ClusterRole", n, [{"kind": "User", "name": n}]) for n in roles])

    def can(user: str, verb: str, resource: str, group: str = "", sub: str = "") -> bool:
        return index.allows(Attributes(UserInfo(user), verb, namespace="ns", group=group,
                                       resource=resource, subresource=sub))

    assert can("view", "get", "pods", sub="log") and not can("view", "get", "secrets")
    assert not can("view", "create", "pods", sub="exec")
    assert can("edit", "create", "secrets") and can("edit", "create", "pods", sub="exec")
    assert not can("edit", "create", "rolebindings", "rbac.authorization.k8s.io")
    assert can("admin", "create", "rolebindings", "rbac.authorization.k8s.io")
    assert can("cluster-admin", "escalate", "anything", "any.group")
