"""The default RBAC policy, created (reconciled) at every API server start.

Kubernetes' `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`: the user-facing
ClusterRoles `cluster-admin`, `admin`, `edit`, `view` with the rules their `aggregate-to-*`
parts give them in Kubernetes 1.33 (flattened here: podns has no aggregation controller), the
`system:discovery`, `system:basic-user` and `system:public-info-viewer` roles every
authenticated user has, and the bindings `cluster-admin` -> group `system:masters`. podns adds
`podns:readonly` (the read-only token's user `readonly` -> `view` cluster-wide, plus reading
Nodes, which the dashboard and the DNS server show and `view` does not cover).

Reconciliation is kube-apiserver's: a missing default is created; an existing one annotated
`rbac.authorization.k8s.io/autoupdate: "true"` (the default) gets the missing rules/subjects
added back, never removed; `autoupdate: "false"` leaves it to the operator.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from podns.api import statuserror
from podns.api.handlers.authorization import AUTHENTICATED_GROUP, MASTERS_GROUP, RBAC_GROUP, READONLY_USER
from podns.api.handlers.rest import Rest, WriteOptions
from podns.api.resources.base import ResourceType

log = logging.getLogger(__name__)

Obj = dict[str, Any]

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = READ + WRITE
AUTOUPDATE = "rbac.authorization.k8s.io/autoupdate"


def rule(verbs: tuple[str, ...] | list[str], groups: list[str], resources: list[str]) -> Obj:
    return {"verbs": list(verbs), "apiGroups": groups, "resources": resources}


def url_rule(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": verbs, "nonResourceURLs": urls}


VIEW_RULES: list[Obj] = [
    rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims",
                      "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                      "replicationcontrollers/scale", "serviceaccounts", "services",
                      "services/status"]),
    rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                      "pods/status", "replicationcontrollers/status", "resourcequotas",
                      "resourcequotas/status"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                          "deployments/scale", "deployments/status", "replicasets",
                          "replicasets/scale", "replicasets/status", "statefulsets",
                          "statefulsets/scale", "statefulsets/status"]),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
    rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments",
                                "deployments/scale", "deployments/status", "ingresses",
                                "ingresses/status", "networkpolicies", "replicasets",
                                "replicasets/scale", "replicasets/status",
                                "replicationcontrollers/scale"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
]

EDIT_RULES: list[Obj] = [
    rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                      "services/proxy"]),
    rule(["impersonate"], [""], ["serviceaccounts"]),
    rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                       "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                       "services/proxy"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                           "replicasets", "replicasets/scale", "statefulsets",
                           "statefulsets/scale"]),
    rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
    rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/rollback",
                                 "deployments/scale", "ingresses", "networkpolicies", "replicasets",
                                 "replicasets/scale", "replicationcontrollers/scale"]),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
    rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]

ADMIN_RULES: list[Obj] = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(READ_WRITE, [RBAC_GROUP], ["rolebindings", "roles"]),
]


def cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults",
                                              **(labels or {})},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    }


def cluster_binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def group(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def user(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


CLUSTER_ROLES: list[Obj] = [
    cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
    cluster_role("admin", ADMIN_RULES + EDIT_RULES + VIEW_RULES),
    cluster_role("edit", EDIT_RULES + VIEW_RULES),
    cluster_role("view", VIEW_RULES),
    cluster_role("system:discovery", [url_rule(["get"], [
        "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*",
        "/readyz", "/version", "/version/"])]),
    cluster_role("system:basic-user", [
        rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews",
                                                    "selfsubjectrulesreviews"]),
        rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
    ]),
    cluster_role("system:public-info-viewer", [url_rule(["get"], [
        "/healthz", "/livez", "/readyz", "/version", "/version/"])]),
    cluster_role("podns:node-viewer", [rule(READ, [""], ["nodes"])]),
]

CLUSTER_ROLE_BINDINGS: list[Obj] = [
    cluster_binding("cluster-admin", "cluster-admin", [group(MASTERS_GROUP)]),
    cluster_binding("system:discovery", "system:discovery", [group(AUTHENTICATED_GROUP)]),
    cluster_binding("system:basic-user", "system:basic-user", [group(AUTHENTICATED_GROUP)]),
    cluster_binding("system:public-info-viewer", "system:public-info-viewer",
                    [group(AUTHENTICATED_GROUP), group("system:unauthenticated")]),
    cluster_binding("podns:readonly", "view", [user(READONLY_USER)]),
    cluster_binding("podns:readonly-nodes", "podns:node-viewer", [user(READONLY_USER)]),
]


def _merged(current: list[Any], wanted: list[Any]) -> list[Any]:
    """`current` plus what of `wanted` it lacks (reconciliation adds, never removes)."""
    return current + [w for w in wanted if w not in current]


async def reconcile(rest: Rest, cluster_roles: ResourceType, cluster_bindings: ResourceType) -> None:
    """Create the default ClusterRoles and ClusterRoleBindings, or add back what they lack."""
    opts = WriteOptions(field_manager="podns-apiserver")
    for rt, objs, key in ((cluster_roles, CLUSTER_ROLES, "rules"),
                          (cluster_bindings, CLUSTER_ROLE_BINDINGS, "subjects")):
        for want in objs:
            name = want["metadata"]["name"]
            try:
                cur = await rest.get(rt, None, name)
            except statuserror.ApiError:
                with contextlib.suppress(statuserror.ApiError):  # another server won the race
                    await rest.create(rt, None, want, opts)
                continue
            annotations = (cur.get("metadata") or {}).get("annotations") or {}
            if annotations.get(AUTOUPDATE, "true") == "false":
                continue
            if _merged(cur.get(key) or [], want[key]) == (cur.get(key) or []):
                continue

            def fix(obj: Obj, key: str = key, want: Obj = want) -> Obj:
                obj[key] = _merged(obj.get(key) or [], want[key])
                return obj

            try:
                await rest.update(rt, None, name, fix, opts)
                log.info("reconciled default %s %s", rt.kind, name)
            except statuserror.ApiError as exc:
                log.warning("could not reconcile %s %s: %s", rt.kind, name, exc)
