"""RBAC's escalation prevention on writes of Roles, ClusterRoles and their bindings
(Kubernetes' `pkg/registry/rbac/*/policybased` storage).

A user may create or change a Role/ClusterRole only with the `escalate` verb on it or when it
already holds every right the role grants; a RoleBinding/ClusterRoleBinding only with `bind` on
the role it references or every right of that role. An update or patch is checked on the object
it produces, unless it changes nothing that grants rights (rules, aggregationRule, roleRef,
subjects, labels and annotations: a label can pull a role into an aggregated one), as Kubernetes
lets a write touching only owner references and finalizers through. A ClusterRole with an
`aggregationRule` needs `escalate` (Kubernetes: "must have cluster-admin privileges to use an
aggregationRule"). Members of `system:masters` are never checked.
"""

from __future__ import annotations

from typing import Any

import orjson

from podns.api import statuserror
from podns.api.handlers import authorization
from podns.api.resources.base import ResourceType

Obj = dict[str, Any]

#: what a write must leave unchanged to skip the check
_GRANTING = ("rules", "aggregationRule", "roleRef", "subjects")


def _granting_view(obj: Obj) -> tuple[Any, ...]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    return (*(obj.get(k) for k in _GRANTING), meta.get("labels") or {}, meta.get("annotations") or {})


def check(authorizer: authorization.Authorizer | None, user: authorization.UserInfo, rt: ResourceType,
          namespace: str, new: Any, old: Obj | None = None) -> None:
    """Raise 403 (Kubernetes' wording) when writing `new` (replacing `old` on update/patch)
    would grant `user` rights it does not hold."""
    if (authorizer is None or rt.group != authorization.RBAC_GROUP or not isinstance(new, dict)
            or authorization.MASTERS_GROUP in user.groups):
        return
    if old is not None and _granting_view(old) == _granting_view(new):
        return
    name = str((new.get("metadata") or {}).get("name") or "")
    if rt.kind in ("Role", "ClusterRole"):
        special = authorization.Attributes(user, "escalate", namespace=namespace, group=rt.group,
                                           resource=rt.resource, name=name)
        if authorizer.authorize(special):
            return
        if new.get("aggregationRule") is not None:
            raise statuserror.admission_forbidden(rt.resource, name, rt.group,
                                                "must have cluster-admin privileges to use an "
                                                "aggregationRule")
        rules: list[Obj] | None = list(new.get("rules") or [])
    else:
        ref = role_ref if isinstance(role_ref := new.get("roleRef"), dict) else {}
        ref_kind = str(ref.get("kind") or "")
        special = authorization.Attributes(
            user, "bind", namespace=namespace, group=rt.group,
            resource="clusterroles" if ref_kind == "ClusterRole" else "roles",
            name=str(ref.get("name") or ""))
        if authorizer.authorize(special):
            return
        rules = authorization.role_rules(authorizer, ref_kind, namespace, str(ref.get("name") or ""))
    missing = (authorization.ungranted(authorizer, user, rules, namespace) if rules is not None
               else [{"roleRef": "not found"}])
    if missing:
        held = ", ".join(orjson.dumps(m).decode() for m in missing[:20])
        groups = " ".join(orjson.dumps(g).decode() for g in user.groups)  # Go's %q of a []string
        raise statuserror.admission_forbidden(rt.resource, name, rt.group, (
            f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions '
            f"not currently held: {held}"))
