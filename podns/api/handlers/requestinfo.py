"""Parsing a Kubernetes REST path and its query into a `RequestInfo`.

URL shapes (G/V = `api/v1` or `apis/<group>/<version>`):
`/G/V/<res>` (cluster-scoped collection, or a namespaced resource across all namespaces),
`/G/V/<res>/<name>[/<sub>]` (cluster-scoped object), `/G/V/namespaces/<ns>/<res>[/<name>[/<sub>]]`.
`/api/v1/namespaces/<name>[/status|/finalize]` is the Namespace object itself, told apart from a
namespaced collection by the third segment naming a namespaced resource.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from podns.api import statuserror
from podns.api.resources.base import ResourceType
from podns.api.resources.registry import SUBRESOURCES

#: subresources that upgrade the connection to a stream into a pod (kube-apiserver's "connect")
CONNECT_SUBRESOURCES = ("exec", "attach", "portforward")

#: HTTP method -> Kubernetes verb on an item URL / a collection URL
ITEM_VERBS = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
COLLECTION_VERBS = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}

Lookup = Callable[[str, str, str], ResourceType | None]


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a resource request addresses."""

    rt: ResourceType
    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    namespace: str | None  # None: cluster-scoped, or all namespaces
    name: str | None
    subresource: str = ""


def parse_path(path: str, method: str, query: Mapping[str, str], lookup: Lookup) -> RequestInfo:
    """Resolve a resource URL. Raises ApiError 404 for unknown resources, 405 for bad verbs."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise statuserror.no_such_resource()
    if not rest:
        raise statuserror.no_such_resource()
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = lookup(group, version, rest[0])
    if rt is None or len(rest) > 3:
        raise statuserror.no_such_resource()
    name = rest[1] if len(rest) >= 2 else None
    sub = rest[2] if len(rest) == 3 else ""
    if sub and sub not in rt.strategy.subresources and not (rt.resource == "namespaces" and
                                                            sub == "finalize"):
        raise statuserror.no_such_resource()
    if name is None:
        verb = COLLECTION_VERBS.get(method)
        if verb == "list" and parse_bool(query.get("watch")):
            verb = "watch"
    else:
        verb = ITEM_VERBS.get(method)
        if sub in CONNECT_SUBRESOURCES:
            # GET and POST both open a stream; both need "create", as Kubernetes 1.31+ asks of
            # WebSocket (GET) upgrades too, so a read-only user cannot run commands in pods
            verb = "create" if method in ("GET", "POST") else None
        elif verb == "create" and sub not in ("binding", "eviction", "token"):
            verb = None
    if verb is None or (sub and verb in ("delete",)):
        raise statuserror.method_not_allowed()
    # a subresource serves only its own verbs (PUT or PATCH on pods/x/eviction, serviceaccounts/x/
    # token or pods/x/binding is a 405, as upstream, never a write to the parent object)
    described = SUBRESOURCES.get(sub) if sub else None
    if described is not None and sub not in CONNECT_SUBRESOURCES and verb not in described.verbs:
        raise statuserror.method_not_allowed()
    if verb not in rt.verbs and not sub:
        raise statuserror.method_not_allowed()
    return RequestInfo(rt=rt, verb=verb, namespace=namespace, name=name, subresource=sub)


def parse_bool(value: str | None) -> bool:
    """Kubernetes query booleans: `true`, `True`, `1` (older Python clients send `True`)."""
    return value is not None and value.lower() in ("true", "1", "yes")


def parse_int(query: Mapping[str, str], key: str) -> int | None:
    """An optional non-negative integer query parameter; 400 when malformed."""
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise statuserror.bad_request(f'invalid value for {key}: "{raw}": must be an integer') from None
    return value


def parse_rv(raw: str | None, what: str = "resourceVersion") -> int | None:
    """A resourceVersion string as the store's integer; None for absent/empty; 400 if garbage."""
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise statuserror.bad_request(f'invalid {what} "{raw}"') from None
    if value < 0:
        raise statuserror.bad_request(f'invalid {what} "{raw}"')
    return value
