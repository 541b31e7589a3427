"""API discovery documents: legacy (/api, /apis, per group and group-version) and aggregated.

kubectl first asks /api and /apis for aggregated discovery (`APIGroupDiscoveryList`, v2 from
1.30, v2beta1 for 1.27-1.29) and falls back to the legacy documents plus one
`APIResourceList` per group-version. Both are generated here from the registry, so
`kubectl api-resources` (short names, namespaced, kind), `kubectl get all` (categories) and
subresources (`pods/status`, `statefulsets/scale` answering `autoscaling/v1 Scale`) agree
with what the server serves. `negotiate` picks the format from the Accept header; the
response Content-Type tells the client which one it got. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from podns.api.resources.base import Obj, ResourceType
from podns.api.resources.registry import REGISTRY, SUBRESOURCES, Registry, registry_for

AGGREGATED_VERSIONS = ("v2", "v2beta1")
JSON = "application/json"


def _aggregated_ct(version: str) -> str:
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def negotiate(accept: str | None) -> str | None:
    """Which aggregated discovery version the client prefers ("v2"/"v2beta1"), or None for the
    legacy documents. Media ranges are taken in the order given (kubectl lists them by
    preference); a plain JSON or wildcard range before any aggregated one means legacy."""
    for media in (accept or "").split(","):
        parts = [p.strip() for p in media.split(";") if p.strip()]
        if not parts:
            continue
        mime = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        params.pop("q", None)
        if mime not in ("application/json", "application/*", "*/*"):
            continue
        if not params:
            return None
        if (params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList"
                and params.get("v") in AGGREGATED_VERSIONS):
            return params["v"]
    return None


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


# ---------------------------------------------------------------------------------------------
# legacy documents


def api_versions(server_address: str = "") -> Obj:
    """`/api`: the core group's versions."""
    doc: Obj = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    if server_address:
        doc["serverAddressByClientCIDRs"] = [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    return doc


def api_group(group: str, registry: Registry = REGISTRY) -> Obj | None:
    """`/apis/<group>`: one APIGroup, or None when the group is not served."""
    versions = [v for g, v in registry.group_versions() if g == group and g]  # preferred first
    if not versions:
        return None
    entries = [{"groupVersion": _group_version(group, v), "version": v} for v in versions]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": entries,
        "preferredVersion": entries[0],
    }


def api_group_list(registry: Registry = REGISTRY) -> Obj:
    """`/apis`: every named group."""
    groups = []
    for group in dict.fromkeys(g for g, _ in registry.group_versions() if g):
        doc = api_group(group, registry)
        if doc:
            groups.append({k: v for k, v in doc.items() if k not in ("kind", "apiVersion")})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(rt: ResourceType) -> Obj:
    return {
        "name": rt.resource,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        **_short_names_and_categories(rt),
    }


def _short_names_and_categories(rt: ResourceType) -> Obj:
    """`shortNames` and `categories` of a resource entry, each only when the kind has some."""
    out: Obj = {}
    if rt.short_names:
        out["shortNames"] = list(rt.short_names)
    if rt.categories:
        out["categories"] = list(rt.categories)
    return out


def _subresource_entries(rt: ResourceType) -> list[Obj]:
    out = []
    for name in rt.strategy.subresources:
        sub = SUBRESOURCES.get(name)
        if sub is None:
            continue
        entry: Obj = {
            "name": f"{rt.resource}/{name}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": sub.kind or rt.kind,
            "verbs": list(sub.verbs),
        }
        if sub.kind and (sub.group, sub.version) != (rt.group, rt.version):
            entry["group"] = sub.group
            entry["version"] = sub.version
        out.append(entry)
    return out


def api_resource_list(group: str, version: str, registry: Registry = REGISTRY) -> Obj | None:
    """`/api/v1` or `/apis/<group>/<version>`: the resources and subresources served there,
    or None when that group-version is not served."""
    if (group, version) not in registry.group_versions():
        return None
    resources: list[Obj] = []
    for rt in sorted(registry.in_group(group, version), key=lambda t: t.resource):
        resources.append(_resource_entry(rt))
        resources.extend(_subresource_entries(rt))
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": _group_version(group, version),
        "resources": resources,
    }


# ---------------------------------------------------------------------------------------------
# aggregated discovery


def _aggregated_resource(rt: ResourceType) -> Obj:
    entry: Obj = {
        "resource": rt.resource,
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
        **_short_names_and_categories(rt),
    }
    subs = []
    for name in rt.strategy.subresources:
        sub = SUBRESOURCES.get(name)
        if sub is None:
            continue
        kind = sub.kind or rt.kind
        group = sub.group if sub.kind else rt.group
        version = sub.version if sub.kind else rt.version
        subs.append({
            "subresource": name,
            "responseKind": {"group": group, "version": version, "kind": kind},
            "verbs": list(sub.verbs),
        })
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(core: bool, version: str = "v2", registry: Registry = REGISTRY) -> Obj:
    """The APIGroupDiscoveryList for `/api` (core=True) or `/apis` (the named groups)."""
    items = []
    for group in dict.fromkeys(g for g, _ in registry.group_versions()):
        if (group == "") != core:
            continue
        versions = []
        for g, v in registry.group_versions():
            if g != group:
                continue
            resources = [_aggregated_resource(rt) for rt in sorted(
                registry.in_group(g, v), key=lambda t: t.resource)]
            versions.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def root_document(core: bool, accept: str | None, *, server_address: str = "",
                  registry: Registry = REGISTRY) -> tuple[Obj, str]:
    """The body and Content-Type answering `GET /api` (core) or `GET /apis` for `accept`."""
    version = negotiate(accept)
    if version:
        return aggregated(core, version, registry), _aggregated_ct(version)
    if core:
        return api_versions(server_address), JSON
    return api_group_list(registry), JSON


def handle(path: str, accept: str | None, types: Iterable[ResourceType] | None = None,
           *, server_address: str = "") -> tuple[Obj, str] | None:
    """(body, Content-Type) for a discovery path (`/api`, `/apis`, `/api/v1`, `/apis/<g>`,
    `/apis/<g>/<v>`), or None when `path` is not a served discovery document (404)."""
    registry = registry_for(types) if types is not None else REGISTRY
    parts = [p for p in path.split("/") if p]
    if parts == ["api"]:
        return root_document(True, accept, server_address=server_address, registry=registry)
    if parts == ["apis"]:
        return root_document(False, accept, registry=registry)
    doc: Obj | None = None
    if len(parts) == 2 and parts[0] == "api":
        doc = api_resource_list("", parts[1], registry)
    elif len(parts) == 2 and parts[0] == "apis":
        doc = api_group(parts[1], registry)
    elif len(parts) == 3 and parts[0] == "apis":
        doc = api_resource_list(parts[1], parts[2], registry)
    return None if doc is None else (doc, JSON)
