"""The served kinds, and lookups of them by URL (group, version, plural), kind and short name.

`REGISTRY` is what the request handlers, discovery and OpenAPI serve (tests serve other lists
through `registry_for`); adding a kind means one `ResourceType` line here plus its Strategy
module. Subresources are described in `SUBRESOURCES` (the kind and verbs discovery advertises for them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from podns.api.resources.base import ResourceType, Strategy
from podns.api.resources.configmap import ConfigMapStrategy
from podns.api.resources.controllerrevision import ControllerRevisionStrategy
from podns.api.resources.cronjob import CronJobStrategy
from podns.api.resources.daemonset import DaemonSetStrategy
from podns.api.resources.deployment import DeploymentStrategy
from podns.api.resources.endpoints import EndpointsStrategy
from podns.api.resources.endpointslice import EndpointSliceStrategy
from podns.api.resources.event import EventStrategy
from podns.api.resources.horizontalpodautoscaler import (
    HorizontalPodAutoscalerStrategy,
    HorizontalPodAutoscalerV1Strategy,
)
from podns.api.resources.ingress import IngressClassStrategy, IngressStrategy
from podns.api.resources.job import JobStrategy
from podns.api.resources.lease import LeaseStrategy
from podns.api.resources.namespace import NamespaceStrategy
from podns.api.resources.node import NodeStrategy
from podns.api.resources.persistentvolume import PersistentVolumeStrategy
from podns.api.resources.persistentvolumeclaim import PersistentVolumeClaimStrategy
from podns.api.resources.pod import PodStrategy
from podns.api.resources.poddisruptionbudget import PodDisruptionBudgetStrategy
from podns.api.resources.rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
)
from podns.api.resources.replicaset import ReplicaSetStrategy
from podns.api.resources.replicationcontroller import ReplicationControllerStrategy
from podns.api.resources.reviews import (
    LocalSubjectAccessReviewStrategy,
    SelfSubjectAccessReviewStrategy,
    SelfSubjectReviewStrategy,
    SelfSubjectRulesReviewStrategy,
    SubjectAccessReviewStrategy,
)
from podns.api.resources.runtimeclass import RuntimeClassStrategy
from podns.api.resources.secret import SecretStrategy
from podns.api.resources.service import ServiceStrategy
from podns.api.resources.serviceaccount import ServiceAccountStrategy
from podns.api.resources.statefulset import StatefulSetStrategy

RBAC = "rbac.authorization.k8s.io"
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
NAMESPACE_VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class Subresource:
    """What discovery says about `<resource>/<name>`: its response kind and verbs. `group`/
    `version`/`kind` empty mean: the parent's."""

    name: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = ""
    kind: str = ""


SUBRESOURCES: dict[str, Subresource] = {
    "status": Subresource("status", ("get", "patch", "update")),
    "scale": Subresource("scale", ("get", "patch", "update"), "autoscaling", "v1", "Scale"),
    "binding": Subresource("binding", ("create",), "", "v1", "Binding"),
    "log": Subresource("log", ("get",), "", "v1", "Pod"),
    "exec": Subresource("exec", ("create", "get"), "", "v1", "PodExecOptions"),
    "attach": Subresource("attach", ("create", "get"), "", "v1", "PodAttachOptions"),
    "portforward": Subresource("portforward", ("create", "get"), "", "v1", "PodPortForwardOptions"),
    "finalize": Subresource("finalize", ("update",), "", "v1", "Namespace"),
    "eviction": Subresource("eviction", ("create",), "policy", "v1", "Eviction"),
    "token": Subresource("token", ("create",), "authentication.k8s.io", "v1", "TokenRequest"),
}


def _rt(group: str, resource: str, kind: str, strategy: Strategy, *, namespaced: bool = True,
        short: tuple[str, ...] = (), categories: tuple[str, ...] = (),
        verbs: tuple[str, ...] = ALL_VERBS, version: str = "v1") -> ResourceType:
    return ResourceType(
        group=group, version=version, resource=resource, kind=kind, singular=kind.lower(),
        namespaced=namespaced, strategy=strategy, short_names=short, categories=categories,
        verbs=verbs,
    )


#: served group names in discovery order; "" is the core group served under /api
GROUPS: tuple[str, ...] = ("", "apps", "authentication.k8s.io", "authorization.k8s.io",
                           "autoscaling", "batch", "networking.k8s.io", "policy",
                           "rbac.authorization.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
                           "node.k8s.io")

TYPES: tuple[ResourceType, ...] = (
    _rt("", "namespaces", "Namespace", NamespaceStrategy(), namespaced=False, short=("ns",),
        verbs=NAMESPACE_VERBS),
    _rt("", "pods", "Pod", PodStrategy(), short=("po",), categories=("all",)),
    _rt("", "services", "Service", ServiceStrategy(), short=("svc",), categories=("all",)),
    _rt("", "endpoints", "Endpoints", EndpointsStrategy(), short=("ep",)),
    _rt("", "nodes", "Node", NodeStrategy(), namespaced=False, short=("no",)),
    _rt("", "events", "Event", EventStrategy(), short=("ev",)),
    _rt("", "configmaps", "ConfigMap", ConfigMapStrategy(), short=("cm",)),
    _rt("", "secrets", "Secret", SecretStrategy()),
    _rt("", "serviceaccounts", "ServiceAccount", ServiceAccountStrategy(), short=("sa",)),
    _rt("", "persistentvolumeclaims", "PersistentVolumeClaim", PersistentVolumeClaimStrategy(),
        short=("pvc",)),
    _rt("", "replicationcontrollers", "ReplicationController", ReplicationControllerStrategy(),
        short=("rc",), categories=("all",)),
    _rt("", "persistentvolumes", "PersistentVolume", PersistentVolumeStrategy(), namespaced=False,
        short=("pv",)),
    _rt("apps", "statefulsets", "StatefulSet", StatefulSetStrategy(), short=("sts",),
        categories=("all",)),
    _rt("apps", "controllerrevisions", "ControllerRevision", ControllerRevisionStrategy()),
    _rt("apps", "deployments", "Deployment", DeploymentStrategy(), short=("deploy",), categories=("all",)),
    _rt("apps", "replicasets", "ReplicaSet", ReplicaSetStrategy(), short=("rs",), categories=("all",)),
    _rt("apps", "daemonsets", "DaemonSet", DaemonSetStrategy(), short=("ds",), categories=("all",)),
    _rt("batch", "jobs", "Job", JobStrategy(), categories=("all",)),
    _rt("batch", "cronjobs", "CronJob", CronJobStrategy(), short=("cj",), categories=("all",)),
    # stored as autoscaling/v2 (listed first: the preferred version); v1 converts
    _rt("autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
        HorizontalPodAutoscalerStrategy(), short=("hpa",), categories=("all",), version="v2"),
    _rt("autoscaling", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
        HorizontalPodAutoscalerV1Strategy(), short=("hpa",), categories=("all",)),
    _rt("networking.k8s.io", "ingresses", "Ingress", IngressStrategy(), short=("ing",)),
    _rt("networking.k8s.io", "ingressclasses", "IngressClass", IngressClassStrategy(),
        namespaced=False),
    _rt("policy", "poddisruptionbudgets", "PodDisruptionBudget", PodDisruptionBudgetStrategy(),
        short=("pdb",)),
    _rt("coordination.k8s.io", "leases", "Lease", LeaseStrategy()),
    _rt("discovery.k8s.io", "endpointslices", "EndpointSlice", EndpointSliceStrategy()),
    _rt("node.k8s.io", "runtimeclasses", "RuntimeClass", RuntimeClassStrategy(), namespaced=False),
    _rt(RBAC, "roles", "Role", RoleStrategy()),
    _rt(RBAC, "clusterroles", "ClusterRole", ClusterRoleStrategy(), namespaced=False),
    _rt(RBAC, "rolebindings", "RoleBinding", RoleBindingStrategy()),
    _rt(RBAC, "clusterrolebindings", "ClusterRoleBinding", ClusterRoleBindingStrategy(),
        namespaced=False),
    _rt("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview",
        SelfSubjectAccessReviewStrategy(), namespaced=False, verbs=("create",)),
    _rt("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview",
        SubjectAccessReviewStrategy(), namespaced=False, verbs=("create",)),
    _rt("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview",
        LocalSubjectAccessReviewStrategy(), verbs=("create",)),
    _rt("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview",
        SelfSubjectRulesReviewStrategy(), namespaced=False, verbs=("create",)),
    _rt("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview",
        SelfSubjectReviewStrategy(), namespaced=False, verbs=("create",)),
    # what `kubectl auth whoami` of kubectl 1.26/1.27 asks for (v1 came with 1.28)
    _rt("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview",
        SelfSubjectReviewStrategy(), namespaced=False, verbs=("create",), version="v1beta1"),
    _rt("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview",
        SelfSubjectReviewStrategy(), namespaced=False, verbs=("create",), version="v1alpha1"),
)

#: the kinds answered on create and never stored (`podns.api.handlers.reviews`)
REVIEW_KINDS = frozenset({"SelfSubjectAccessReview", "SubjectAccessReview", "SelfSubjectReview",
                          "LocalSubjectAccessReview", "SelfSubjectRulesReview"})


class Registry:
    """Lookups over the served `ResourceType`s (iterable, in discovery order)."""

    def __init__(self, types: tuple[ResourceType, ...]) -> None:
        self.types = types
        self._by_gvr = {(t.group, t.version, t.resource): t for t in types}
        self._by_gk: dict[tuple[str, str], ResourceType] = {}
        for t in types:  # a kind served in several versions: the first listed (preferred) one
            self._by_gk.setdefault((t.group, t.kind), t)
        self._by_name: dict[str, ResourceType] = {}
        for t in types:
            for alias in (t.resource, t.singular, *t.short_names):
                self._by_name.setdefault(alias, t)

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self.types)

    def all(self) -> list[ResourceType]:
        return list(self.types)

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        """The type served at /<group>/<version>/<resource>, or None."""
        return self._by_gvr.get((group, version, resource))

    def namespaced(self) -> list[ResourceType]:
        """One type per namespaced store resource (what deleting a namespace must clear)."""
        seen: dict[str, ResourceType] = {}
        for t in self.types:
            if t.namespaced:
                seen.setdefault(t.store_resource, t)
        return list(seen.values())

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        return self._by_gk.get((group, kind))

    def by_name(self, name: str) -> ResourceType | None:
        """By plural, singular or short name (`pods`, `pod`, `po`), as kubectl resolves them."""
        return self._by_name.get(name.lower())

    def in_group(self, group: str, version: str = "v1") -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]

    def group_versions(self) -> list[tuple[str, str]]:
        """(group, version) pairs served: core first, then `GROUPS` order, then any others;
        a group's versions by Kubernetes' priority (the preferred one first)."""
        pairs = list(dict.fromkeys((t.group, t.version) for t in self.types))
        order = {g: i for i, g in enumerate(GROUPS)}
        return sorted(pairs, key=lambda gv: (order.get(gv[0], len(order)), gv[0],
                                             version_priority(gv[1])))


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key of API versions in Kubernetes' order (`version.CompareKubeAwareVersionStrings`):
    GA before beta before alpha, higher numbers first (v2, v1, v1beta2, v1beta1, v1alpha1), other
    strings last, alphabetically."""
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), "")


_REGISTRIES: dict[tuple[int, ...], Registry] = {}


def registry_for(types: Iterable[ResourceType]) -> Registry:
    """A Registry over `types` (the shared REGISTRY when they are its types); cached, so that
    documents computed per registry are computed once."""
    listed = tuple(types)
    if listed == REGISTRY.types:
        return REGISTRY
    key = tuple(id(t) for t in listed)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = Registry(listed)
    return _REGISTRIES[key]


def schema_type(rt: ResourceType) -> str:
    """The schema-table type of a kind (`core.v1.Pod`), or "" when it has none."""
    return str(getattr(rt.strategy, "schema_type", ""))


REGISTRY = Registry(TYPES)
