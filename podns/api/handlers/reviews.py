"""Answers to the review kinds, which are created and never stored.

- `SelfSubjectAccessReview` (`kubectl auth can-i`): may the requesting user do this?
- `SubjectAccessReview`: may the user/groups in the spec do this? (who may ask: RBAC decides,
  `create subjectaccessreviews`, which only `cluster-admin` has by default)
- `LocalSubjectAccessReview`: the same, limited to the namespace of its URL (the `admin` role
  may ask it in its namespace)
- `SelfSubjectRulesReview` (`kubectl auth can-i --list`): every rule the requesting user holds
  in a namespace
- `SelfSubjectReview` (`kubectl auth whoami`): who is the requesting user (after impersonation)?
  Served as authentication.k8s.io v1, v1beta1 and v1alpha1 (kubectl 1.27 asks for v1beta1).

Validation and status fields are Kubernetes' (`pkg/apis/authorization/validation`).
"""

from __future__ import annotations

from typing import Any

from podns.api import statuserror
from podns.api.handlers.authorization import Attributes, Authorizer, UserInfo, node_name_of
from podns.api.resources._validation import invalid
from podns.api.resources.base import FieldError, ResourceType
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]

#: the Node authorizer cannot list a node's rights (they follow its pods): Kubernetes' message
NODE_RULES_INCOMPLETE = "node authorizer does not support user rule resolution"


def answer(rt: ResourceType, body: Obj, user: UserInfo, authorizer: Authorizer | None,
           namespace: str = "") -> Obj:
    """The review `body` with its status filled in; raises 422 for an invalid spec (400 for a
    LocalSubjectAccessReview about another namespace than its URL's)."""
    if rt.kind == "SelfSubjectRulesReview":
        return rules_review(rt, body, user, authorizer)
    out: Obj = {"kind": rt.kind, "apiVersion": rt.api_version,
                "metadata": {"creationTimestamp": now_rfc3339()}}
    if rt.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.to_json()}
        return out
    spec = body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if rt.kind in ("SubjectAccessReview", "LocalSubjectAccessReview"):
        groups = tuple(g for g in spec.get("groups") or [] if isinstance(g, str))
        if not spec.get("user") and not groups:
            errs.append(invalid("spec.user", spec.get("user") or "",
                                "at least one of user or group must be specified"))
        user = UserInfo(str(spec.get("user") or ""), groups)
    if rt.kind == "LocalSubjectAccessReview":
        if nonres is not None:
            errs.append(invalid("spec.nonResourceAttributes", nonres, "disallowed on this kind of request"))
        if isinstance(res, dict):
            if res.get("namespace") not in (None, "", namespace):
                raise statuserror.bad_request(
                    f"spec.resourceAttributes.namespace must match namespace: {namespace}")
            res = {**res, "namespace": namespace}
            spec = {**spec, "resourceAttributes": res}
    elif res is not None and nonres is not None:
        errs.append(invalid("spec.nonResourceAttributes", nonres,
                            "cannot be specified in combination with resourceAttributes"))
    if res is None and nonres is None:
        errs.append(invalid("spec.resourceAttributes", None,
                            "exactly one of nonResourceAttributes or resourceAttributes must be "
                            "specified"))
    if errs:
        raise statuserror.invalid(rt.kind, "", errs, rt.group)
    if isinstance(res, dict):
        attrs = Attributes(user, str(res.get("verb") or ""), namespace=str(res.get("namespace") or ""),
                           group=str(res.get("group") or ""), resource=str(res.get("resource") or ""),
                           subresource=str(res.get("subresource") or ""),
                           name=str(res.get("name") or ""))
    else:
        nr = nonres if isinstance(nonres, dict) else {}
        attrs = Attributes(user, str(nr.get("verb") or ""), resource_request=False,
                           path=str(nr.get("path") or ""))
    allowed = authorizer.authorize(attrs) if authorizer is not None else True
    if rt.kind == "LocalSubjectAccessReview":
        out["metadata"]["namespace"] = namespace
    out["spec"] = spec
    out["status"] = {"allowed": allowed}
    return out
def rules_review(rt: ResourceType, body: Obj, user: UserInfo, authorizer: Authorizer | None) -> Obj:
    """SelfSubjectRulesReview (`kubectl auth can-i --list`): the rules RBAC gives the user in
    `spec.namespace` (cluster-wide bindings included), as kube-apiserver's RulesFor lists them;
    a node's list is incomplete (the Node authorizer cannot enumerate its graph)."""
    spec = body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    namespace = str(spec.get("namespace") or "")
    resource_rules: list[Obj] = []
    non_resource_rules: list[Obj] = []
    for rule in authorizer.index.rules_for(user, namespace) if authorizer is not None else ():
        raw = rule.raw
        if raw.get("resources"):
            resource_rules.append({k: list(raw.get(k) or []) for k in
                                   ("verbs", "apiGroups", "resources", "resourceNames")})
        if raw.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(raw.get("verbs") or []),
                                       "nonResourceURLs": list(raw["nonResourceURLs"])})
    status: Obj = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": False}
    if authorizer is not None and node_name_of(user) is not None:
        status["incomplete"] = True
        status["evaluationError"] = "node authorizer does not support user rule resolution"
    return {"kind": rt.kind, "apiVersion": rt.api_version,
            "metadata": {"creationTimestamp": None}, "spec": {**spec}, "status": status}
