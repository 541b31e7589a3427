"""Ingresses and IngressClasses (networking.k8s.io/v1): validation with Kubernetes' messages and
paths, kubectl's columns.

Kubernetes itself routes no Ingress traffic: an ingress controller (a separate deployment) does.
podns serves the objects as kube-apiserver does, so manifests with an Ingress apply, `kubectl
create ingress` and `get/describe ingress` work; no
controller of podns acts on them (`status.loadBalancer` stays empty until something writes it).

- Ingress (`ValidateIngressSpec`): `defaultBackend` or `rules`; each backend a Service (name, and
  a port name or number) or a typed resource, not both; paths need a `pathType` (Exact, Prefix,
  ImplementationSpecific), Exact and Prefix paths are absolute; hosts are wildcard DNS names, not
  IPs; `ingressClassName` a DNS subdomain. Columns NAME CLASS HOSTS ADDRESS PORTS AGE. Admission
  (the DefaultIngressClass plugin): a new Ingress naming no class (neither `ingressClassName` nor
  the legacy `kubernetes.io/ingress.class` annotation) gets the class annotated
  `ingressclass.kubernetes.io/is-default-class: "true"`, the newest when several are.
- IngressClass: `spec.controller` required, a domain-prefixed path of at most 250 characters,
  immutable; parameters name a kind and a name, with scope Cluster (no namespace) or Namespace
  (a namespace). Columns NAME CONTROLLER PARAMETERS AGE.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE, list_with_more
from podns.api.resources._validation import (
    as_object,
    dig,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    too_long,
    validate_port,
)
from podns.api.resources.base import AdmissionContext, Column, FieldError, Obj
from podns.objects import names

if TYPE_CHECKING:
    from podns.store.interface import Store

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
#: the store key prefix of IngressClasses (`ResourceType.store_resource` of networking.k8s.io
#: ingressclasses), read by the DefaultIngressClass admission
CLASS_STORE_PREFIX = "ingressclasses.networking.k8s.io/"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
PARAMETER_SCOPES = ["Cluster", "Namespace"]
#: Kubernetes' limit on `IngressClass.spec.controller`
CONTROLLER_MAX_LENGTH = 250
_WILDCARD = re.compile(r"\*\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
WILDCARD_MESSAGE = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid "
                    "DNS subdomain, which must consist of lower case alphanumeric characters, '-' "
                    "or '.' and end with an alphanumeric character (e.g. '*.example.com', regex "
                    "used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]"
                    "([-a-z0-9]*[a-z0-9])?)*')")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def validate_host(path: str, host: Any) -> list[FieldError]:
    """A rule's or TLS entry's host: a DNS subdomain or `*.` one, never an IP address."""
    if not isinstance(host, str) or not host:
        return []
    if _is_ip(host):
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    if host.startswith("*"):
        return [] if _WILDCARD.fullmatch(host) else [invalid(path, host, WILDCARD_MESSAGE)]
    return [invalid(path, host, msg) for msg in names.is_dns1123_subdomain(host)]


def validate_backend(path: str, backend: Any) -> list[FieldError]:
    """`ValidateIngressBackend`: a Service with a port name or number, or a typed resource."""
    if not isinstance(backend, dict):
        return [invalid(path, "", "resource or service backend is required")]
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if isinstance(resource, dict):
        return [required(f"{path}.resource.{field}") for field in ("kind", "name")
                if not resource.get(field)]
    if not isinstance(service, dict):
        return [invalid(path, "", "resource or service backend is required")]
    errs: list[FieldError] = []
    name = service.get("name")
    if not name:
        errs.append(required(f"{path}.service.name"))
    else:
        errs.extend(invalid(f"{path}.service.name", name, msg)
                    for msg in names.is_dns1035_label(str(name)))
    port = as_object(service.get("port"))
    port_name, number = port.get("name"), port.get("number")
    if port_name and number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs.extend(invalid(f"{path}.service.port.name", port_name, msg)
                    for msg in names.is_valid_port_name(str(port_name)))
    elif number:
        errs.extend(validate_port(f"{path}.service.port.number", number))
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _validate_paths(path: str, paths: Any) -> list[FieldError]:
    if not paths:
        return [required(path)]
    errs: list[FieldError] = []
    for i, entry in enumerate(paths if isinstance(paths, list) else []):
        epath = f"{path}[{i}]"
        entry = entry if isinstance(entry, dict) else {}
        kind, value = entry.get("pathType"), entry.get("path")
        if not kind:
            errs.append(required(f"{epath}.pathType", "pathType must be specified"))
        elif kind not in PATH_TYPES:
            errs.append(not_supported(f"{epath}.pathType", kind, PATH_TYPES))
        elif kind in ("Exact", "Prefix") and not str(value or "").startswith("/"):
            errs.append(invalid(f"{epath}.path", value or "", "must be an absolute path"))
        elif kind in ("Exact", "Prefix") and "//" in str(value):
            errs.append(invalid(f"{epath}.path", value, "must not contain '//'"))
        errs.extend(validate_backend(f"{epath}.backend", entry.get("backend")))
    return errs


class IngressStrategy(KindStrategy):
    schema_type = "networking.v1.Ingress"
    subresources = ("status",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    async def admit(self, obj: Obj, old: Obj | None, ctx: AdmissionContext) -> list[FieldError]:
        spec = obj.get("spec")
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if old is None and isinstance(spec, dict) and spec.get("ingressClassName") is None \
                and LEGACY_CLASS_ANNOTATION not in annotations:
            default = await default_class(ctx.store)
            if default:
                spec["ingressClassName"] = default
        return []

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = {}
        errs: list[FieldError] = []
        rules = spec.get("rules")
        if spec.get("defaultBackend") is None and not rules:
            errs.append(invalid("spec", rules, "either `defaultBackend` or `rules` must be specified"))
        if spec.get("defaultBackend") is not None:
            errs.extend(validate_backend("spec.defaultBackend", spec["defaultBackend"]))
        for i, rule in enumerate(rules if isinstance(rules, list) else []):
            rule = rule if isinstance(rule, dict) else {}
            errs.extend(validate_host(f"spec.rules[{i}].host", rule.get("host")))
            if rule.get("http") is not None:
                errs.extend(_validate_paths(f"spec.rules[{i}].http.paths",
                                            dig(rule, "http", "paths")))
        tls_entries = spec.get("tls")
        for i, tls in enumerate(tls_entries if isinstance(tls_entries, list) else []):
            hosts = tls.get("hosts") if isinstance(tls, dict) else None
            for j, host in enumerate(hosts if isinstance(hosts, list) else []):
                errs.extend(validate_host(f"spec.tls[{i}].hosts[{j}]", host))
        class_name = spec.get("ingressClassName")
        if class_name is not None:
            errs.extend(invalid("spec.ingressClassName", class_name, msg)
                        for msg in names.is_dns1123_subdomain(str(class_name)))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Class", description="The name of the IngressClass resource that should be "
                   "used for ingress."),
            Column("Hosts", description="Hosts that incoming requests are matched against "
                   "before the ingress rule"),
            Column("Address", description="Address is a list containing ingress points for the "
                   "load-balancer"),
            Column("Ports", description="Ports of TLS configurations that open"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec = obj.get("spec") or {}
        hosts = [str(r["host"]) for r in spec.get("rules") or [] if isinstance(r, dict) and r.get("host")]
        points = dig(obj, "status", "loadBalancer", "ingress") or []
        address = ",".join(str(p.get("ip") or p.get("hostname") or "") for p in points
                           if isinstance(p, dict) and (p.get("ip") or p.get("hostname")))
        return [
            spec.get("ingressClassName") or "<none>",
            list_with_more(hosts, empty="*"),
            address,
            "80, 443" if spec.get("tls") else "80",
        ]


class IngressClassStrategy(KindStrategy):
    schema_type = "networking.v1.IngressClass"
    namespaced = False

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = as_object(obj.get("spec"))
        errs: list[FieldError] = []
        controller = spec.get("controller")
        if not controller:
            errs.append(required("spec.controller"))
        elif len(str(controller)) > CONTROLLER_MAX_LENGTH:
            errs.append(too_long("spec.controller", CONTROLLER_MAX_LENGTH))
        elif not _domain_prefixed_path(str(controller)):
            errs.append(invalid("spec.controller", controller,
                                "must be a domain-prefixed path (such as \"acme.io/foo\")"))
        params = spec.get("parameters")
        if isinstance(params, dict):
            path = "spec.parameters"
            for field in ("kind", "name"):
                if not params.get(field):
                    errs.append(required(f"{path}.{field}"))
            scope = params.get("scope", "Cluster")
            if scope not in PARAMETER_SCOPES:
                errs.append(not_supported(f"{path}.scope", scope, PARAMETER_SCOPES))
            elif scope == "Cluster" and params.get("namespace"):
                errs.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
            elif scope == "Namespace" and not params.get("namespace"):
                errs.append(required(f"{path}.namespace",
                                     "`parameters.scope` is set to 'Namespace'"))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("spec.controller", dig(new, "spec", "controller"),
                         dig(old, "spec", "controller"))

    def columns(self) -> list[Column]:
        return [
            Column("Controller", description="Controller that is responsible for handling this "
                   "class"),
            Column("Parameters", description="A reference to a resource with additional "
                   "parameters"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec = obj.get("spec") or {}
        params = spec.get("parameters")
        shown = "<none>"
        if isinstance(params, dict):
            shown = str(params.get("kind", ""))
            if params.get("apiGroup"):
                shown += "." + str(params["apiGroup"])
            shown += "/" + str(params.get("name", ""))
        return [spec.get("controller", ""), shown]


async def default_class(store: Store) -> str | None:
    """The name of the default IngressClass (annotated `is-default-class: "true"`; the newest,
    then the first by name, when several are), or None."""
    defaults: list[tuple[str, str]] = []
    start: str | None = None
    while True:
        page = await store.list(CLASS_STORE_PREFIX, limit=500, start_after=start)
        for ic in page.items:
            md = ic.get("metadata") or {}
            if (md.get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
                defaults.append((str(md.get("creationTimestamp") or ""), str(md.get("name") or "")))
        if page.continue_key is None:
            break
        start = page.continue_key
    if not defaults:
        return None
    newest = max(created for created, _ in defaults)
    return min(name for created, name in defaults if created == newest)


def _domain_prefixed_path(value: str) -> bool:
    """Kubernetes' `IsDomainPrefixedPath`: `<DNS subdomain>/<non-empty path>`."""
    host, slash, rest = value.partition("/")
    return bool(slash and host and rest) and not names.is_dns1123_subdomain(host)
