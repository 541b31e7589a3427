"""Review kinds: authorization.k8s.io/v1 SelfSubjectAccessReview, SubjectAccessReview,
LocalSubjectAccessReview and SelfSubjectRulesReview, authentication.k8s.io SelfSubjectReview
(v1, and v1beta1/v1alpha1 for kubectl 1.27's `auth whoami`).

They are create-only and never stored (Kubernetes' "virtual" resources): the request body asks a
question, the response is the same object with its `status` answered. The answering is
`podns.api.handlers.reviews`; this module describes them for the registry, discovery and OpenAPI.
"""

from __future__ import annotations

from podns.api.resources._kind import KindStrategy


class SelfSubjectAccessReviewStrategy(KindStrategy):
    schema_type = "authorization.v1.SelfSubjectAccessReview"
    namespaced = False


class SubjectAccessReviewStrategy(KindStrategy):
    schema_type = "authorization.v1.SubjectAccessReview"
    namespaced = False


class SelfSubjectReviewStrategy(KindStrategy):
    schema_type = "authentication.v1.SelfSubjectReview"
    namespaced = False


class LocalSubjectAccessReviewStrategy(KindStrategy):
    schema_type = "authorization.v1.LocalSubjectAccessReview"
    namespaced = True


class SelfSubjectRulesReviewStrategy(KindStrategy):
    schema_type = "authorization.v1.SelfSubjectRulesReview"
    namespaced = False
