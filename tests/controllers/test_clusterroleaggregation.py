"""The ClusterRole aggregation controller's pure part: which rules an aggregated role gets."""

from __future__ import annotations

from typing import Any

from podns.api.handlers import rbacpolicy
from podns.controllers.clusterroleaggregation import aggregated_rules


def cr(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None,
       selects: str | None = None) -> dict[str, Any]:
    role: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selects is not None:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]}
    return role


R1 = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
R2 = {"verbs": ["list"], "apiGroups": [""], "resources": ["services"]}


def test_rules_of_matching_roles_by_name_once_each() -> None:
    """given two labelled roles (one repeating a rule) and an unlabelled one, the aggregated
    role gets the labelled roles' rules in the order of their names, each rule once, never its
    own."""
    agg = cr("agg", [R2], selects="x")
    roles = [cr("b", [R1, R2], {"x": "true"}), cr("a", [R1], {"x": "true"}), cr("c", [R2]), agg]
    assert aggregated_rules(agg, roles) == [R1, R2]
    assert aggregated_rules(agg, [agg]) == []


def test_default_roles_are_already_what_aggregation_makes() -> None:
    """given the default policy, the rules written into admin, edit and view equal what the
    controller computes from the system:aggregate-to-* roles (no rewrite at its first run)."""
    roles = rbacpolicy.CLUSTER_ROLES
    by_name = {r["metadata"]["name"]: r for r in roles}
    for name in ("view", "edit", "admin"):
        assert aggregated_rules(by_name[name], roles) == by_name[name]["rules"], name
