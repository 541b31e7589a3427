"""Discovery and OpenAPI endpoints, delegating the bodies to the api-kinds modules.

`podns.api.discovery.apidiscovery` and `podns.api.discovery.openapi` own the documents
(aggregated discovery v2 and v2beta1, APIResourceLists, OpenAPI v2/v3). This glue routes
requests to them and, while a module is absent, serves the legacy discovery documents built
from the catalog (enough for every kubectl 1.27-1.33 command, see docs/api.md) and 404 for OpenAPI.

Expected api-kinds signatures (each returns a JSON-able body, or None for "not served"):
`discovery.handle(path: str, accept: str, types: list[ResourceType]) -> tuple[dict, str] | None`
(body and Content-Type) and `openapi.handle(path: str, query: Mapping, accept: str,
types: list[ResourceType]) -> tuple[bytes, str] | None`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podns.api.encoding import codec
from podns.api.resources.base import ResourceType
from podns.api.resources.catalog import Catalog

Obj = dict[str, Any]


def _resource_entries(types: list[ResourceType], group: str, version: str) -> list[Obj]:
    out: list[Obj] = []
    for t in types:
        if t.group != group or t.version != version:
            continue
        entry: Obj = {"name": t.resource, "singularName": t.singular, "namespaced": t.namespaced,
                      "kind": t.kind, "verbs": list(t.verbs)}
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        out.append(entry)
        for sub in t.strategy.subresources:
            verbs = ["get", "patch", "update"]
            sub_entry: Obj = {"name": f"{t.resource}/{sub}", "singularName": "",
                              "namespaced": t.namespaced, "kind": t.kind, "verbs": verbs}
            if sub == "scale":
                sub_entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "binding":
                sub_entry.update(kind="Binding", verbs=["create"])
            out.append(sub_entry)
    return out


def _groups(types: list[ResourceType]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for t in types:
        versions = groups.setdefault(t.group, [])
        if t.version not in versions:
            versions.append(t.version)
    return groups


def legacy(path: str, types: list[ResourceType]) -> Obj | None:
    """Legacy (non-aggregated) discovery bodies."""
    parts = [p for p in path.split("/") if p]
    groups = _groups(types)
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [_group(g, vs) for g, vs in groups.items() if g]}
    if parts == ["api", "v1"]:
        return {"kind": "APIResourceList", "groupVersion": "v1",
                "resources": _resource_entries(types, "", "v1")}
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], ()):
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{parts[1]}/{parts[2]}",
                "resources": _resource_entries(types, parts[1], parts[2])}
    return None


def _group(name: str, versions: list[str]) -> Obj:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def discovery(path: str, accept: str, catalog: Catalog) -> tuple[bytes, str] | None:
    """(body, content type) for a discovery path, or None when it is not one."""
    types = list(catalog)
    try:
        from podns.api.discovery import apidiscovery as kinds_discovery
    except ImportError:
        kinds_discovery = None  # type: ignore[assignment]
    handle = getattr(kinds_discovery, "handle", None)
    if handle is not None:
        got = handle(path, accept, types)
        if got is None:
            return None
        body, ctype = got
        return (body if isinstance(body, bytes) else codec.dumps(body)), ctype
    doc = legacy(path, types)
    return None if doc is None else (codec.dumps(doc), codec.JSON)


def openapi(path: str, query: Mapping[str, str], accept: str,
            catalog: Catalog) -> tuple[bytes, str] | None:
    """(body, content type) for an OpenAPI path, or None (404)."""
    try:
        from podns.api.discovery import openapi as kinds_openapi
    except ImportError:
        return None
    handle = getattr(kinds_openapi, "handle", None)
    if handle is None:
        return None
    got = handle(path, query, accept, list(catalog))
    if got is None:
        return None
    body, ctype = got
    return (body if isinstance(body, bytes) else codec.dumps(body)), ctype
