"""The ClusterRole aggregation controller (Kubernetes' `pkg/controller/clusterroleaggregation`).

A ClusterRole with an `aggregationRule` gets, as its `rules`, the rules of every other
ClusterRole matching one of its `clusterRoleSelectors`, in the order of their names, each rule
once. That is how the default `admin`, `edit` and `view` roles are built from the
`system:aggregate-to-*` roles, and how a ClusterRole labelled
`rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view`. A rule no longer
provided disappears from the aggregated role. Writing another ClusterRole needs the `escalate`
verb: the controller's role (`system:controller:clusterrole-aggregation-controller`) has it.

Pure part: `aggregated_rules(role, roles)`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import CLUSTERROLES
from podns.objects import Obj, meta_of, name_of, object_key
from podns.objects.selectors import match_label_selector


def _selectors(role: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The role's clusterRoleSelectors; None when it has no aggregationRule."""
    rule = role.get("aggregationRule")
    if not isinstance(rule, Mapping):
        return None
    return [s for s in rule.get("clusterRoleSelectors") or [] if isinstance(s, Mapping)]


def aggregated_rules(role: Mapping[str, Any], roles: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The rules `role` aggregates from `roles` (itself excluded): those of every role a selector
    matches, by role name, without repeating an identical rule."""
    selectors = _selectors(role) or []
    out: list[Obj] = []
    for other in sorted(roles, key=name_of):
        if name_of(other) == name_of(role):
            continue
        labels = meta_of(other).get("labels") or {}
        if not any(match_label_selector(s, labels) for s in selectors):
            continue
        for rule in other.get("rules") or []:
            if isinstance(rule, dict) and rule not in out:
                out.append(rule)
    return out


class ClusterRoleAggregationController(workerloop.Controller):
    """Keeps the rules of aggregated ClusterRoles equal to what their selectors pick."""

    name = "clusterrole-aggregation-controller"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.roles = informers.get(CLUSTERROLES)
        self.roles.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n),
                               on_delete=self._changed)

    def _changed(self, _role: Obj) -> None:
        """Any ClusterRole's change may concern any aggregated one (its labels or rules): enqueue
        them all, as Kubernetes does; there are few."""
        for role in self.roles.list():
            if _selectors(role) is not None:
                self.enqueue(object_key(role))

    async def sync(self, key: Hashable) -> None:
        role = self.roles.get(str(key))
        if role is None or _selectors(role) is None:
            return  # gone, or no longer aggregated
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return
        try:
            await self.client.update(CLUSTERROLES, {**role, "apiVersion": CLUSTERROLES.api_version,
                                                    "kind": CLUSTERROLES.kind, "rules": rules})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(str(key)) from None
