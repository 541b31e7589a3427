"""The default RBAC policy, created (reconciled) at every API server start.

Kubernetes' `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go`: the user-facing
ClusterRoles `cluster-admin`, `admin`, `edit`, `view` with the rules their `aggregate-to-*`
parts give them in Kubernetes 1.33 (aggregated as there: `view`, `edit`, `admin` carry an
aggregationRule over the `system:aggregate-to-*` roles and each other; they are written already
filled, so they work before the aggregation controller of podns' controller manager runs), the
`system:discovery`, `system:basic-user` and `system:public-info-viewer` roles every
authenticated user has, and the bindings `cluster-admin` -> group `system:masters`.

The components' roles are Kubernetes' too: `system:kube-controller-manager`,
`system:kube-scheduler` and one `system:controller:<name>` per controller podns runs (bound to
its ServiceAccount in `kube-system`, as Kubernetes does, and to the controller manager's user,
since podns' controllers share its client), `system:node` (the Node authorizer's static rules;
not bound), `system:node-proxier` (bound to the group `system:nodes` too: the podns node agent is
its own proxy) and `system:podns-dns` for the cluster DNS (CoreDNS' `system:coredns` rules). podns adds
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
from podns.api.handlers.authorization import (
    AUTHENTICATED_GROUP,
    CONTROLLER_MANAGER_USER,
    DNS_USER,
    MASTERS_GROUP,
    NODES_GROUP,
    RBAC_GROUP,
    READONLY_USER,
    SCHEDULER_USER,
)
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


# -- the components' roles (Kubernetes 1.33 bootstrappolicy: policy.go, controller_policy.go) --------

EVENTS = rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])
COORDINATION = "coordination.k8s.io"

#: `system:node`: what the Node authorizer allows a node beyond its graph checks
#: (`podns.api.handlers.nodeauthorizer`); Kubernetes no longer binds the role to nodes
NODE_RULES: list[Obj] = [
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews", "localsubjectaccessreviews"]),
    rule(READ, [""], ["services"]),
    rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    rule(["update", "patch"], [""], ["nodes/status"]),
    rule(["update", "patch"], [""], ["nodes"]),
    # its own Node only (the Node authorizer): an agent whose assigned pod CIDR is unusable on its
    # machine recreates its Node with another, as a set podCIDR cannot change (Kubernetes' role
    # leaves delete out; Gardener binds a `system:node-self-deleter` role for the same need)
    rule(["delete"], [""], ["nodes"]),
    rule(["create", "update", "patch"], [""], ["events"]),
    rule(READ, [""], ["pods"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["update", "patch"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(READ, [""], ["secrets", "configmaps"]),
    rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["get"], [""], ["endpoints"]),
    rule(["create", "get", "list", "watch"], ["certificates.k8s.io"], ["certificatesigningrequests"]),
    rule(["get", "create", "update", "patch", "delete"], [COORDINATION], ["leases"]),
    rule(["get"], ["storage.k8s.io"], ["volumeattachments"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(["get", "update", "patch"], [""], ["persistentvolumeclaims/status"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers"]),
    rule(["get", "create", "update", "patch", "delete"], ["storage.k8s.io"], ["csinodes"]),
    rule(READ, ["node.k8s.io"], ["runtimeclasses"]),
]

NODE_PROXIER_RULES: list[Obj] = [
    rule(["list", "watch"], [""], ["services", "endpoints"]),
    rule(READ, [""], ["nodes"]),
    EVENTS,
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]

KUBE_CONTROLLER_MANAGER_RULES: list[Obj] = [
    EVENTS,
    rule(["create"], [COORDINATION], ["leases"]),
    {**rule(["get", "update"], [COORDINATION], ["leases"]), "resourceNames": ["kube-controller-manager"]},
    rule(["create"], [""], ["endpoints"]),
    {**rule(["get", "update"], [""], ["endpoints"]), "resourceNames": ["kube-controller-manager"]},
    rule(["create"], [""], ["secrets", "serviceaccounts"]),
    rule(["delete"], [""], ["secrets"]),
    rule(["get"], [""], ["namespaces", "secrets", "serviceaccounts", "configmaps"]),
    rule(["update"], [""], ["secrets", "serviceaccounts"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    rule(["list", "watch"], ["*"], ["*"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
]

KUBE_SCHEDULER_RULES: list[Obj] = [
    EVENTS,
    rule(["create"], [COORDINATION], ["leases"]),
    {**rule(["get", "update"], [COORDINATION], ["leases"]), "resourceNames": ["kube-scheduler"]},
    rule(READ, [""], ["nodes"]),
    rule(["get", "list", "watch", "delete"], [""], ["pods"]),
    rule(["create"], [""], ["pods/binding", "bindings"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(READ, [""], ["services", "replicationcontrollers"]),
    rule(READ, ["apps", "extensions"], ["replicasets"]),
    rule(READ, ["apps"], ["statefulsets"]),
    rule(READ, ["policy"], ["poddisruptionbudgets"]),
    rule(READ, [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
    rule(READ, ["storage.k8s.io"], ["csinodes"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers", "csistoragecapacities"]),
]

#: what the cluster DNS watches (CoreDNS' `system:coredns` ClusterRole, plus StatefulSets:
#: podns answers for a StatefulSet's pods by their stable names)
DNS_RULES: list[Obj] = [
    rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    rule(["list", "watch"], ["apps"], ["statefulsets"]),
]

_APPS = ["apps", "extensions"]
#: `system:controller:<name>` roles of the controllers podns runs (controller_policy.go)
CONTROLLER_ROLES: dict[str, list[Obj]] = {
    "clusterrole-aggregation-controller": [
        rule(["escalate", "get", "list", "watch", "update", "patch"], [RBAC_GROUP], ["clusterroles"])],
    "cronjob-controller": [
        rule(["get", "list", "watch", "update"], ["batch"], ["cronjobs"]),
        rule(["get", "list", "watch", "create", "update", "delete", "patch"], ["batch"], ["jobs"]),
        rule(["update"], ["batch"], ["cronjobs/status", "cronjobs/finalizers"]),
        rule(["list", "watch", "delete"], [""], ["pods"]), EVENTS],
    "daemon-set-controller": [
        rule(READ, _APPS, ["daemonsets"]),
        rule(["update"], _APPS, ["daemonsets/status", "daemonsets/finalizers"]),
        rule(["list", "watch"], [""], ["nodes"]),
        rule(["list", "watch", "create", "delete", "patch"], [""], ["pods"]),
        rule(["create"], [""], ["pods/binding"]),
        rule(["get", "list", "watch", "create", "delete", "update", "patch"], ["apps"],
             ["controllerrevisions"]), EVENTS],
    "deployment-controller": [
        rule(["get", "list", "watch", "update"], _APPS, ["deployments"]),
        rule(["update"], _APPS, ["deployments/status", "deployments/finalizers"]),
        rule(["get", "list", "watch", "create", "update", "patch", "delete"], _APPS, ["replicasets"]),
        rule(["get", "list", "watch", "update"], [""], ["pods"]), EVENTS],
    "disruption-controller": [
        rule(READ, _APPS, ["deployments", "replicasets"]),
        rule(READ, [""], ["replicationcontrollers"]),
        rule(READ, ["policy"], ["poddisruptionbudgets"]),
        rule(READ, ["apps"], ["statefulsets"]),
        rule(["update"], ["policy"], ["poddisruptionbudgets/status"]),
        rule(["patch", "update"], [""], ["pods/status"]),
        rule(["get"], ["*"], ["*/scale"]), EVENTS],
    "endpoint-controller": [
        rule(READ, [""], ["services", "pods"]),
        rule(["get", "list", "watch", "create", "update", "delete"], [""], ["endpoints"]),
        rule(["create"], [""], ["endpoints/restricted"]), EVENTS],
    "endpointslice-controller": [
        rule(READ, [""], ["services", "pods", "nodes"]),
        rule(["update"], [""], ["services/finalizers"]),
        rule(["get", "list", "watch", "create", "update", "delete"], ["discovery.k8s.io"],
             ["endpointslices"]), EVENTS],
    "generic-garbage-collector": [
        rule(["get", "list", "watch", "patch", "update", "delete"], ["*"], ["*"]), EVENTS],
    "job-controller": [
        rule(["get", "list", "watch", "update", "patch"], ["batch"], ["jobs"]),
        rule(["update"], ["batch"], ["jobs/status", "jobs/finalizers"]),
        rule(["list", "watch", "create", "delete", "patch"], [""], ["pods"]), EVENTS],
    "node-controller": [
        rule(["get", "list", "watch", "update", "delete", "patch"], [""], ["nodes"]),
        rule(["patch", "update"], [""], ["nodes/status", "pods/status"]),
        rule(["list", "watch", "get", "delete"], [""], ["pods"]), EVENTS],
    "persistent-volume-binder": [
        rule(["get", "list", "watch", "update", "create", "delete"], [""], ["persistentvolumes"]),
        rule(["update"], [""], ["persistentvolumes/status", "persistentvolumeclaims/status"]),
        rule(["get", "list", "watch", "update"], [""], ["persistentvolumeclaims"]),
        rule(["list", "watch", "get", "create", "delete"], [""], ["pods"]),
        rule(READ, ["storage.k8s.io"], ["storageclasses"]),
        rule(["list", "watch"], [""], ["nodes"]), EVENTS],
    "horizontal-pod-autoscaler": [
        rule(["get", "list", "watch"], ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(["update"], ["autoscaling"], ["horizontalpodautoscalers/status"]),
        rule(["get", "update", "patch"], ["*"], ["*/scale"]),
        # podns reads the scale target itself (Kubernetes reads its /scale)
        rule(["get"], ["apps"], ["deployments", "replicasets", "statefulsets"]),
        rule(["get"], [""], ["replicationcontrollers"]),
        rule(["list"], [""], ["pods"]), EVENTS],
    "replication-controller": [
        rule(["get", "list", "watch", "update"], [""], ["replicationcontrollers"]),
        rule(["update"], [""], ["replicationcontrollers/status", "replicationcontrollers/finalizers"]),
        rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]), EVENTS],
    "replicaset-controller": [
        rule(["get", "list", "watch", "update"], _APPS, ["replicasets"]),
        rule(["update"], _APPS, ["replicasets/status", "replicasets/finalizers"]),
        rule(["list", "watch", "patch", "create", "delete"], [""], ["pods"]), EVENTS],
    "root-ca-cert-publisher": [rule(["create", "update"], [""], ["configmaps"]), EVENTS],
    "service-account-controller": [rule(["create"], [""], ["serviceaccounts"]), EVENTS],
    "statefulset-controller": [
        rule(["list", "watch"], [""], ["pods"]),
        rule(READ, ["apps"], ["statefulsets"]),
        rule(["update"], ["apps"], ["statefulsets/status", "statefulsets/finalizers"]),
        rule(["get", "create", "delete", "update", "patch"], [""], ["pods"]),
        rule(["get", "create", "delete", "update", "patch", "list", "watch"], ["apps"],
             ["controllerrevisions"]),
        rule(["get", "create", "list", "watch"], [""], ["persistentvolumeclaims"]),
        rule(["update", "delete"], [""], ["persistentvolumeclaims"]),
        rule(["update"], [""], ["pods/finalizers"]), EVENTS],
}


def cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults",
                                              **(labels or {})},
                     "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    }


AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"


def aggregated(name: str, selects: str, rules: list[Obj], to: str | None = None) -> Obj:
    """A ClusterRole aggregating the ClusterRoles labelled `aggregate-to-<selects>`, itself
    labelled `aggregate-to-<to>` (view -> edit -> admin, as in Kubernetes)."""
    role = cluster_role(name, rules, {f"{AGGREGATE_TO}{to}": "true"} if to else None)
    role["aggregationRule"] = {"clusterRoleSelectors": [
        {"matchLabels": {f"{AGGREGATE_TO}{selects}": "true"}}]}
    return role


def cluster_binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                     "annotations": {AUTOUPDATE: "true"}},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def service_account(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "namespace": namespace, "name": name}


def group(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "Group", "name": name}


def user(name: str) -> Obj:
    return {"apiGroup": RBAC_GROUP, "kind": "User", "name": name}


CLUSTER_ROLES: list[Obj] = [
    cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])]),
    # aggregated as in Kubernetes (the aggregation controller keeps them equal to the union of
    # the roles their selectors pick); written here already filled, in the order the controller
    # produces, so that they work before any controller manager runs
    aggregated("admin", "admin", EDIT_RULES + VIEW_RULES + ADMIN_RULES),
    aggregated("edit", "edit", EDIT_RULES + VIEW_RULES, to="admin"),
    aggregated("view", "view", VIEW_RULES, to="edit"),
    cluster_role("system:aggregate-to-admin", ADMIN_RULES, {f"{AGGREGATE_TO}admin": "true"}),
    cluster_role("system:aggregate-to-edit", EDIT_RULES, {f"{AGGREGATE_TO}edit": "true"}),
    cluster_role("system:aggregate-to-view", VIEW_RULES, {f"{AGGREGATE_TO}view": "true"}),
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
    cluster_role("system:node", NODE_RULES),
    cluster_role("system:node-proxier", NODE_PROXIER_RULES),
    cluster_role("system:kube-controller-manager", KUBE_CONTROLLER_MANAGER_RULES),
    cluster_role("system:kube-scheduler", KUBE_SCHEDULER_RULES),
    cluster_role("system:podns-dns", DNS_RULES),
    *(cluster_role(f"system:controller:{name}", rules) for name, rules in CONTROLLER_ROLES.items()),
]

CLUSTER_ROLE_BINDINGS: list[Obj] = [
    cluster_binding("cluster-admin", "cluster-admin", [group(MASTERS_GROUP)]),
    cluster_binding("system:discovery", "system:discovery", [group(AUTHENTICATED_GROUP)]),
    cluster_binding("system:basic-user", "system:basic-user", [group(AUTHENTICATED_GROUP)]),
    cluster_binding("system:public-info-viewer", "system:public-info-viewer",
                    [group(AUTHENTICATED_GROUP), group("system:unauthenticated")]),
    cluster_binding("podns:readonly", "view", [user(READONLY_USER)]),
    cluster_binding("podns:readonly-nodes", "podns:node-viewer", [user(READONLY_USER)]),
    # the podns node agent runs the ClusterIP proxy itself: nodes are proxiers too
    cluster_binding("system:node-proxier", "system:node-proxier",
                    [user("system:kube-proxy"), group(NODES_GROUP)]),
    cluster_binding("system:kube-controller-manager", "system:kube-controller-manager",
                    [user(CONTROLLER_MANAGER_USER)]),
    # podns' scheduler runs inside the controller manager
    cluster_binding("system:kube-scheduler", "system:kube-scheduler",
                    [user(SCHEDULER_USER), user(CONTROLLER_MANAGER_USER)]),
    cluster_binding("system:podns-dns", "system:podns-dns", [user(DNS_USER)]),
    # Kubernetes binds each controller role to its ServiceAccount in kube-system (the controller
    # manager's --use-service-account-credentials); podns' controllers share the controller
    # manager's client, so its user is bound too
    *(cluster_binding(f"system:controller:{name}", f"system:controller:{name}",
                      [service_account("kube-system", name), user(CONTROLLER_MANAGER_USER)])
      for name in CONTROLLER_ROLES),
]


def _merged(current: list[Any], wanted: list[Any]) -> list[Any]:
    """`current` plus what of `wanted` it lacks (reconciliation adds, never removes)."""
    return current + [w for w in wanted if w not in current]


def _lacks(cur: Obj, want: Obj) -> bool:
    """Does `cur` lack `want`'s aggregationRule or one of its labels (a data dir written
    before the default roles were aggregated)?"""
    if "aggregationRule" in want and cur.get("aggregationRule") != want["aggregationRule"]:
        return True
    labels = (cur.get("metadata") or {}).get("labels") or {}
    return any(k not in labels for k in want["metadata"]["labels"])


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
            if _merged(cur.get(key) or [], want[key]) == (cur.get(key) or []) and not _lacks(cur, want):
                continue

            def fix(obj: Obj, key: str = key, want: Obj = want) -> Obj:
                obj[key] = _merged(obj.get(key) or [], want[key])
                if "aggregationRule" in want:
                    obj["aggregationRule"] = want["aggregationRule"]
                meta = obj.setdefault("metadata", {})
                meta["labels"] = {**want["metadata"]["labels"], **(meta.get("labels") or {})}
                return obj

            try:
                await rest.update(rt, None, name, fix, opts)
                log.info("reconciled default %s %s", rt.kind, name)
            except statuserror.ApiError as exc:
                log.warning("could not reconcile %s %s: %s", rt.kind, name, exc)
