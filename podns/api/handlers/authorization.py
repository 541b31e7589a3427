"""The two-role authorization of the API server: who may use which verb.

Authentication (`podns.api.server.authentication`) turns a bearer token into one of two users;
the dispatcher asks `may` once the request's verb is known from its `RequestInfo`. The admin
user may use every verb; the read-only user get/list/watch only (a write gets 403 worded like
RBAC's denial).
"""

from __future__ import annotations

#: verbs the read-only token may use
READ_VERBS = frozenset({"get", "list", "watch"})

ADMIN_USER = "admin"
READONLY_USER = "readonly"


def may(user: str, verb: str) -> bool:
    """Whether `user` may perform `verb` (Kubernetes verb names: get, list, create, ...)."""
    return user == ADMIN_USER or verb in READ_VERBS
