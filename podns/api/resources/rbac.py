"""rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Validation is Kubernetes' `pkg/apis/rbac/validation` (rules, role references, subjects, with its
messages and field paths; names are path-segment names, so `system:masters` is valid); defaults
are `SetDefaults_Subject` (a User/Group subject's `apiGroup` is the RBAC group). Printer columns
are kubectl's: NAME, CREATED AT for roles; NAME, ROLE, AGE and, wide, USERS, GROUPS,
SERVICEACCOUNTS for bindings. What the rules mean is `podns.api.handlers.authorization`'s job.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import invalid, not_supported, required
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import names

GROUP = "rbac.authorization.k8s.io"


def path_segment_name(name: str) -> list[str]:
    """Kubernetes' `IsValidPathSegmentName` (ValidateRBACName): anything but `.`/`..`, `/`, `%`."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def validate_rule(rule: Any, path: str, *, namespaced: bool) -> list[FieldError]:
    """`ValidatePolicyRule`: verbs always; non-resource URLs only in cluster roles and never
    mixed with resources; resource rules need api groups and resources."""
    if not isinstance(rule, dict):
        return [invalid(path, rule, "must be an object")]
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = _strings(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not rule.get("apiGroups"):
        errs.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        errs.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return errs


class _RoleStrategy(KindStrategy):
    name_validator = staticmethod(path_segment_name)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, rule in enumerate(obj.get("rules") or []):
            errs.extend(validate_rule(rule, f"rules[{i}]", namespaced=self.namespaced))
        return errs

    def columns(self) -> list[Column]:
        return [Column("Created At", type="date", description=(
            "CreationTimestamp is a timestamp representing the server time when this object was "
            "created."))]

    def cells(self, obj: Obj) -> list[Any]:
        return [(obj.get("metadata") or {}).get("creationTimestamp") or ""]


class RoleStrategy(_RoleStrategy):
    schema_type = "rbac.v1.Role"


class ClusterRoleStrategy(_RoleStrategy):
    schema_type = "rbac.v1.ClusterRole"
    namespaced = False


def validate_subject(subject: Any, path: str, *, namespaced: bool) -> list[FieldError]:
    """`ValidateRoleBindingSubject`."""
    if not isinstance(subject, dict):
        return [invalid(path, subject, "must be an object")]
    errs: list[FieldError] = []
    name, kind, group = subject.get("name") or "", subject.get("kind"), subject.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs.extend(invalid(f"{path}.name", name, msg) for msg in names.is_dns1123_subdomain(name))
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


class _BindingStrategy(KindStrategy):
    name_validator = staticmethod(path_segment_name)
    #: the role kinds this binding may reference
    role_kinds: tuple[str, ...] = ("Role", "ClusterRole")

    def set_defaults(self, obj: Obj) -> None:
        for subject in obj.get("subjects") or []:
            if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get(
                    "kind") in ("User", "Group"):
                subject["apiGroup"] = GROUP

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        ref = obj.get("roleRef")
        ref = ref if isinstance(ref, dict) else {}
        if ref.get("apiGroup") != GROUP:
            errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
        if ref.get("kind") not in self.role_kinds:
            errs.append(not_supported("roleRef.kind", ref.get("kind") or "", list(self.role_kinds)))
        name = ref.get("name") or ""
        if not name:
            errs.append(required("roleRef.name"))
        else:
            errs.extend(invalid("roleRef.name", name, msg) for msg in path_segment_name(name))
        for i, subject in enumerate(obj.get("subjects") or []):
            errs.extend(validate_subject(subject, f"subjects[{i}]", namespaced=self.namespaced))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        if new.get("roleRef") != old.get("roleRef"):
            return [invalid("roleRef", new.get("roleRef"), "cannot change roleRef")]
        return []

    def columns(self) -> list[Column]:
        return [
            Column("Role", description="RoleRef is the reference to the role."),
            AGE,
            Column("Users", priority=1, description="Users in the roleBinding"),
            Column("Groups", priority=1, description="Groups in the roleBinding"),
            Column("ServiceAccounts", priority=1, description="ServiceAccounts in the roleBinding"),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        ref = obj.get("roleRef") or {}
        users, groups, sas = [], [], []
        for s in obj.get("subjects") or []:
            if s.get("kind") == "User":
                users.append(s.get("name", ""))
            elif s.get("kind") == "Group":
                groups.append(s.get("name", ""))
            elif s.get("kind") == "ServiceAccount":
                sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        # AGE is filled in by the renderer: these are ROLE, then the wide columns
        return [f"{ref.get('kind', '')}/{ref.get('name', '')}", ", ".join(users), ", ".join(groups),
                ", ".join(sas)]


class RoleBindingStrategy(_BindingStrategy):
    schema_type = "rbac.v1.RoleBinding"


class ClusterRoleBindingStrategy(_BindingStrategy):
    schema_type = "rbac.v1.ClusterRoleBinding"
    namespaced = False
    role_kinds = ("ClusterRole",)
