"""Answers to the review kinds, which are created and never stored.

- `SelfSubjectAccessReview` (`kubectl auth can-i`): may the requesting user do this?
- `SubjectAccessReview`: may the user/groups in the spec do this? (who may ask: RBAC decides,
  `create subjectaccessreviews`, which only `cluster-admin` has by default)
- `SelfSubjectReview` (`kubectl auth whoami`): who is the requesting user (after impersonation)?

Validation and status fields are Kubernetes' (`pkg/apis/authorization/validation`).
"""

from __future__ import annotations

from typing import Any

from podns.api import statuserror
from podns.api.handlers.authorization import Attributes, Authorizer, UserInfo
from podns.api.resources._validation import invalid
from podns.api.resources.base import FieldError, ResourceType
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]


def answer(rt: ResourceType, body: Obj, user: UserInfo, authorizer: Authorizer | None) -> Obj:
    """The review `body` with its status filled in; raises 422 for an invalid spec."""
    out: Obj = {"kind": rt.kind, "apiVersion": rt.api_version,
                "metadata": {"creationTimestamp": now_rfc3339()}}
    if rt.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": user.to_json()}
        return out
    spec = body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    if rt.kind == "SubjectAccessReview":
        groups = tuple(g for g in spec.get("groups") or [] if isinstance(g, str))
        if not spec.get("user") and not groups:
            errs.append(invalid("spec.user", spec.get("user") or "",
                                "at least one of user or group must be specified"))
        user = UserInfo(str(spec.get("user") or ""), groups)
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if res is not None and nonres is not None:
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
    out["spec"] = spec
    out["status"] = {"allowed": allowed}
    return out
