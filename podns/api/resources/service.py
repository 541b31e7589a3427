"""Services: defaulting, validation, ClusterIP/NodePort allocation and printing.

Kubernetes semantics kept here: `type` defaults to ClusterIP; ports default `protocol: TCP`
and `targetPort: <port>`, must be named (uniquely) when there is more than one; `clusterIP:
None` makes a headless service; ExternalName services need `externalName` and have no cluster
IP; NodePort and LoadBalancer ports get a node port from the server's
`--service-node-port-range` (default 30000-32767), kept on update when left out, dropped when
the type changes away from NodePort/LoadBalancer (unless changed at the same time: then refused,
as Kubernetes), and released when the Service is deleted, changes type or drops the port.

Traffic policies: `externalTrafficPolicy` defaults to Cluster and may only be set on
externally-accessible Services (NodePort, LoadBalancer, or with `externalIPs`); it is dropped when
the type changes away from those and the field was left as it was (`dropTypeDependentFields`). A
LoadBalancer with `externalTrafficPolicy: Local` gets a `healthCheckNodePort` from the node port
range (the requested one when given), kept on update when left out, immutable while the Service
needs it, released when it no longer does; set on any other Service it is refused with
Kubernetes' message. One difference: a requested health check port that is taken or out of range
is a 422 at `spec.healthCheckNodePort` (kube-apiserver answers 500 InternalError with the same
words), as this server never answers 500 for bad input.

Dual-stack (`servicefamilies`): the server's service CIDRs (`ctx.service_cidr`, one or two
comma-separated, primary first) are the cluster's IP families. `ipFamilyPolicy` and
`ipFamilies` are defaulted against them at admission, as kube-apiserver does before allocating;
then one cluster IP is allocated per family of `ipFamilies` (`clusterIPs[i]` in the CIDR of
`ipFamilies[i]`, the requested one when given), `clusterIP` = `clusterIPs[0]`. The primary IP and
family never change; an update may add the secondary (upgrade to PreferDualStack or
RequireDualStack) or drop it (downgrade, only with `ipFamilyPolicy: SingleStack`), which
releases its address.

Allocations are reservations in the store under `_alloc/serviceips/<ip>` and
`_alloc/nodeports/<port>`, made with `store.create` so two API servers can never hand out the
same address. Known gap: the cluster IPs of a Service that changes to ExternalName are not
released until the Service is deleted.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from podns.api.resources import _printing as pr
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    BAD_IP_MESSAGE,
    dig,
    duplicate,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    validate_int_or_string_port,
    validate_labels,
    validate_port,
)
from podns.api.resources.base import AdmissionContext, Column, FieldError, Obj
from podns.api.resources.servicefamilies import (
    init_families,
    validate_cluster_ips,
    validate_external_name,
    validate_upgrade_downgrade,
)
from podns.objects import names
from podns.objects.cidrs import families_of, ip_family, parse_cidrs
from podns.store.errors import AlreadyExists, NotFound

SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
NODE_PORT_RANGE = (30000, 32767)  # Kubernetes' default --service-node-port-range
IP_ALLOC_PREFIX = "_alloc/serviceips/"
PORT_ALLOC_PREFIX = "_alloc/nodeports/"
#: how many random picks to try before scanning the reservations list for a free address
_RANDOM_TRIES = 16


def _is_headless(spec: Obj) -> bool:
    return spec.get("clusterIP") == "None"


class ServiceStrategy(KindStrategy):
    schema_type = "core.v1.Service"
    allow_create_on_update = True  # kube-apiserver: a PUT may create a Service
    subresources = ("status",)
    name_validator = staticmethod(names.is_dns1035_label)

    def initial_status(self, obj: Obj) -> Obj:
        return {"loadBalancer": {}}

    # -- defaults ------------------------------------------------------------------------------

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if not isinstance(port, dict):
                continue
            port.setdefault("protocol", "TCP")
            if "targetPort" not in port and isinstance(port.get("port"), int):
                port["targetPort"] = port["port"]
        if stype == "ExternalName":
            return
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if _externally_accessible(spec):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        ip = spec.get("clusterIP")
        ips = spec.get("clusterIPs")
        if ip and not ips:
            spec["clusterIPs"] = [ip]
        elif ips and isinstance(ips, list) and not ip:
            spec["clusterIP"] = ips[0]
        # ipFamilyPolicy and ipFamilies depend on the cluster's service CIDRs: see admit()

    # -- validation ----------------------------------------------------------------------------

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs: list[FieldError] = []
        stype = spec.get("type", "ClusterIP")
        if stype not in SERVICE_TYPES:
            errs.append(not_supported("spec.type", stype, SERVICE_TYPES))
        errs.extend(self._validate_cluster_ip(spec, stype))
        ports = spec.get("ports") or []
        if not isinstance(ports, list):
            return [*errs, invalid("spec.ports", ports, "must be a list")]
        if stype != "ExternalName" and not ports and not _is_headless(spec):
            errs.append(required("spec.ports"))
        seen_names: set[str] = set()
        seen_ports: set[tuple[Any, Any]] = set()
        seen_node_ports: set[tuple[Any, Any]] = set()
        for i, port in enumerate(ports):
            errs.extend(self._validate_port(i, port, len(ports), stype, seen_names, seen_ports))
            if isinstance(port, dict) and isinstance(port.get("nodePort"), int) and port["nodePort"]:
                node_port = (port["nodePort"], str(port.get("protocol", "TCP")))
                if node_port in seen_node_ports:
                    errs.append(duplicate(f"spec.ports[{i}].nodePort", port["nodePort"]))
                seen_node_ports.add(node_port)
        errs.extend(validate_labels("spec.selector", spec.get("selector")))
        affinity = spec.get("sessionAffinity", "None")
        if affinity not in ("ClientIP", "None"):
            errs.append(not_supported("spec.sessionAffinity", affinity, ["ClientIP", "None"]))
        for field in ("internalTrafficPolicy", "externalTrafficPolicy"):
            value = spec.get(field)
            if value is not None and value not in ("Cluster", "Local"):
                errs.append(not_supported(f"spec.{field}", value, ["Cluster", "Local"]))
        errs.extend(_validate_external_traffic(spec))
        pnra = spec.get("publishNotReadyAddresses")
        if pnra is not None and not isinstance(pnra, bool):
            errs.append(invalid("spec.publishNotReadyAddresses", pnra, "must be a boolean"))
        return errs

    @staticmethod
    def _validate_cluster_ip(spec: Obj, stype: str) -> list[FieldError]:
        ip = spec.get("clusterIP")
        errs: list[FieldError] = []
        if stype == "ExternalName":
            ext = spec.get("externalName")
            if not ext:
                errs.append(required("spec.externalName"))
            else:
                errs.extend(
                    invalid("spec.externalName", ext, m)
                    for m in names.is_dns1123_subdomain(str(ext).removesuffix("."))
                )
            if ip:
                errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
            return errs + validate_external_name(spec)
        errs = validate_cluster_ips(spec)
        if ip == "None" and stype in ("NodePort", "LoadBalancer"):
            errs.append(invalid(
                "spec.clusterIP", ip, "may not be set to 'None' for LoadBalancer or NodePort services"
            ))
        elif ip not in (None, "", "None") and ip_family(ip) is None:
            errs.append(invalid("spec.clusterIP", ip, BAD_IP_MESSAGE))
        return errs

    @staticmethod
    def _validate_port(
        i: int, port: Any, count: int, stype: str, seen_names: set[str], seen_ports: set[tuple[Any, Any]]
    ) -> list[FieldError]:
        path = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            return [invalid(path, port, "must be an object")]
        errs: list[FieldError] = []
        name = port.get("name") or ""
        if count > 1 and not name:
            errs.append(required(f"{path}.name"))
        elif name:
            errs.extend(invalid(f"{path}.name", name, m) for m in names.is_dns1123_label(str(name)))
            if name in seen_names:
                errs.append(duplicate(f"{path}.name", name))
            seen_names.add(name)
        errs.extend(validate_port(f"{path}.port", port.get("port")))
        protocol = port.get("protocol", "TCP")
        if protocol not in PROTOCOLS:
            errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
        if "targetPort" in port and port["targetPort"] not in (0, "", None):
            errs.extend(validate_int_or_string_port(f"{path}.targetPort", port["targetPort"]))
        node_port = port.get("nodePort")
        if node_port:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(forbidden(f"{path}.nodePort", f"may not be used when `type` is '{stype}'"))
            else:
                errs.extend(validate_port(f"{path}.nodePort", node_port))
        key = (port.get("port"), protocol)
        if key in seen_ports:
            errs.append(duplicate(path, {"port": port.get("port"), "protocol": protocol}))
        seen_ports.add(key)
        return errs

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Keep what the server allocated when an update leaves it out, and keep `clusterIP` and
        `clusterIPs` in step (Kubernetes' `patchAllocatedValues`, `normalizeClusterIPs` and
        `dropTypeDependentFields`): the cluster IPs, the policy and the node port of each
        unchanged port; a change to ExternalName drops the IP fields it did not change."""
        super().prepare_for_update(new, old)
        nspec, ospec = new.get("spec"), old.get("spec") or {}
        if not isinstance(nspec, dict):
            return
        if (_externally_accessible(ospec) and not _externally_accessible(nspec)
                and nspec.get("externalTrafficPolicy") == ospec.get("externalTrafficPolicy")):
            nspec.pop("externalTrafficPolicy", None)  # Kubernetes' dropTypeDependentFields
        if _needs_health_check(ospec):
            if not _needs_health_check(nspec):
                if nspec.get("healthCheckNodePort") == ospec.get("healthCheckNodePort"):
                    nspec.pop("healthCheckNodePort", None)
            elif not nspec.get("healthCheckNodePort") and ospec.get("healthCheckNodePort"):
                nspec["healthCheckNodePort"] = ospec["healthCheckNodePort"]  # patchAllocatedValues
        if nspec.get("type") not in ("NodePort", "LoadBalancer"):  # Kubernetes' dropTypeDependentFields
            old_ports = {_port_key(p): p.get("nodePort") for p in ospec.get("ports") or [] if _port_key(p)}
            for port in nspec.get("ports") or []:
                key = _port_key(port)
                if key is not None and port.get("nodePort") and old_ports.get(key) == port["nodePort"]:
                    del port["nodePort"]
        if nspec.get("type") == "ExternalName":
            if ospec.get("type") != "ExternalName":
                for name in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                    if name in nspec and nspec[name] == ospec.get(name):
                        del nspec[name]
            return
        if ospec.get("type") == "ExternalName":
            return
        old_ip, old_ips = ospec.get("clusterIP") or "", ospec.get("clusterIPs") or []
        if not nspec.get("clusterIP") and old_ip:
            nspec["clusterIP"] = old_ip
        if not nspec.get("clusterIPs") and old_ips:
            nspec["clusterIPs"] = old_ips
        if old_ip != nspec.get("clusterIP") and nspec.get("clusterIP") and nspec.get("clusterIPs") == old_ips:
            nspec["clusterIPs"] = [nspec["clusterIP"]]
        if nspec.get("ipFamilyPolicy") is None and ospec.get("ipFamilyPolicy") is not None:
            nspec["ipFamilyPolicy"] = ospec["ipFamilyPolicy"]
        if nspec.get("type") in ("NodePort", "LoadBalancer"):
            held = {_port_key(p): p.get("nodePort") for p in ospec.get("ports") or [] if _port_key(p)}
            for port in nspec.get("ports") or []:
                key = _port_key(port)
                if key is not None and not port.get("nodePort") and held.get(key):
                    port["nodePort"] = held[key]

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
        errs: list[FieldError] = []
        if (_needs_health_check(ospec) and _needs_health_check(nspec)
                and nspec.get("healthCheckNodePort") != ospec.get("healthCheckNodePort")):
            errs.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
        if "ExternalName" in (nspec.get("type"), ospec.get("type")):
            return errs  # changing to or from ExternalName may set or clear the cluster IP
        return errs + immutable("spec.clusterIP", nspec.get("clusterIP"), ospec.get("clusterIP"))

    # -- allocation ----------------------------------------------------------------------------

    async def admit(self, obj: Obj, old: Obj | None, ctx: AdmissionContext) -> list[FieldError]:
        spec = obj.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        owner = _owner(obj)
        ospec = (old or {}).get("spec") or {}
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            await _release_node_ports(ctx, spec, ospec, owner)
            return []
        prior = ospec if old is not None and ospec.get("type") != "ExternalName" else None
        nets = parse_cidrs(ctx.service_cidr)
        errs = init_families(spec, prior, families_of(nets))
        if not errs and prior is not None:
            errs = validate_upgrade_downgrade(spec, prior)
        if errs:
            return errs
        taken: list[str] = []  # keys reserved by this call, given back if a later step fails
        if spec.get("clusterIP") != "None":
            errs = await self._allocate_ips(spec, prior, nets, ctx, owner, taken)
            if errs:
                await _give_back(ctx, taken)
                return errs
        if stype in ("NodePort", "LoadBalancer"):
            old_ports = {p.get("nodePort") for p in ospec.get("ports") or [] if p.get("nodePort")}
            for i, port in enumerate(spec.get("ports") or []):
                wanted = port.get("nodePort")
                if wanted and wanted in old_ports:
                    continue
                allocated, err = await _allocate_node_port(ctx, owner, wanted, f"spec.ports[{i}].nodePort")
                if err:
                    await _give_back(ctx, taken)
                    return [err]
                taken.append(PORT_ALLOC_PREFIX + str(allocated))
                port["nodePort"] = allocated
        old_hc = ospec.get("healthCheckNodePort") if _needs_health_check(ospec) else None
        if _needs_health_check(spec) and not (old_hc and spec.get("healthCheckNodePort") == old_hc):
            allocated, err = await _allocate_node_port(ctx, owner, spec.get("healthCheckNodePort"),
                                                       "spec.healthCheckNodePort", health_check=True)
            if err:
                await _give_back(ctx, taken)
                return [err]
            taken.append(PORT_ALLOC_PREFIX + str(allocated))
            spec["healthCheckNodePort"] = allocated
        if prior is not None:  # a downgrade releases the secondary address (after the checks above)
            kept = set(spec.get("clusterIPs") or [])
            dropped = [ip for ip in prior.get("clusterIPs") or [] if ip not in kept and ip != "None"]
            await _release_keys(ctx, [IP_ALLOC_PREFIX + ip for ip in dropped], owner)
        await _release_node_ports(ctx, spec, ospec, owner)
        return []

    @staticmethod
    async def _allocate_ips(spec: Obj, prior: Obj | None, nets: list[Any], ctx: AdmissionContext,
                            owner: str, taken: list[str]) -> list[FieldError]:
        """One cluster IP per family of `ipFamilies` (those `prior` already holds are kept),
        from the service CIDR of that family; reserved keys are appended to `taken`."""
        by_family = dict(zip(families_of(nets), nets, strict=True))
        held = list((prior or {}).get("clusterIPs") or [])
        ips = [str(ip) for ip in spec.get("clusterIPs") or []]
        families = spec.get("ipFamilies") or []
        ips += [""] * (len(families) - len(ips))
        for i, family in enumerate(families):
            if i < len(held) and ips[i] == held[i]:
                continue
            net = by_family[family]  # init_families admitted only the cluster's families
            ip = ips[i]
            if ip:
                if ipaddress.ip_address(ip) not in net:
                    return [invalid("spec.clusterIPs", ips, f"failed to allocate IP {ip}: the provided IP "
                                    f"({ip}) is not in the valid range. The range of valid IPs is {net}")]
                try:
                    await ctx.store.create(IP_ALLOC_PREFIX + ip, _reservation(ip, owner))
                except AlreadyExists:
                    return [invalid("spec.clusterIPs", ips,
                                    f"failed to allocate IP {ip}: provided IP is already allocated")]
            else:
                chosen = await _pick_free_ip(net, ctx, owner)
                if chosen is None:
                    return [invalid("spec.clusterIPs", [],
                                    f"failed to allocate a serviceIP: range is full ({net})")]
                ips[i] = ip = chosen
            taken.append(IP_ALLOC_PREFIX + ip)
        spec["clusterIPs"] = ips
        spec["clusterIP"] = ips[0]
        return []

    async def release(self, obj: Obj, ctx: AdmissionContext) -> None:
        spec = obj.get("spec") or {}
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        keys = [IP_ALLOC_PREFIX + ip for ip in ips if ip and ip != "None"]
        keys += [PORT_ALLOC_PREFIX + str(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")]
        if isinstance(spec.get("healthCheckNodePort"), int) and spec["healthCheckNodePort"]:
            keys.append(PORT_ALLOC_PREFIX + str(spec["healthCheckNodePort"]))
        await _release_keys(ctx, keys, _owner(obj))

    # -- printing ------------------------------------------------------------------------------

    def columns(self) -> list[Column]:
        return [
            Column("Type", description="type determines how the Service is exposed."),
            Column("Cluster-IP", description="clusterIP is the IP address of the service."),
            Column("External-IP",
                description=(
                    "externalIPs is a list of IP addresses for which nodes in the cluster will also "
                    "accept traffic for this service."
                )),
            Column("Port(s)", description="The list of ports that are exposed by this service."),
            AGE,
            Column("Selector", priority=1,
                description=(
                    "Route service traffic to pods with label keys and values matching this selector."
                )),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec = obj.get("spec") or {}
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        ports = []
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                ports.append(f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}")
            else:
                ports.append(f"{p.get('port')}/{p.get('protocol', 'TCP')}")
        return [
            spec.get("type", "ClusterIP"),
            ips[0] if ips else "<none>",
            _external_ip(obj),
            ",".join(ports) or "<none>",
            pr.format_labels(spec.get("selector")),
        ]


def _external_ip(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    stype = spec.get("type", "ClusterIP")
    external = list(spec.get("externalIPs") or [])
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if stype == "LoadBalancer":
        ingress = dig(obj, "status", "loadBalancer", "ingress", default=[])
        lb = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join(lb + external) or "<pending>"
    if stype == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _externally_accessible(spec: Obj) -> bool:
    """Kubernetes' `ExternallyAccessible`: type NodePort or LoadBalancer, or ClusterIP with
    `externalIPs`; only these take an `externalTrafficPolicy`."""
    stype = spec.get("type", "ClusterIP")
    return stype in ("NodePort", "LoadBalancer") or (stype == "ClusterIP" and bool(spec.get("externalIPs")))


def _needs_health_check(spec: Obj) -> bool:
    """Kubernetes' `NeedsHealthCheck`: a LoadBalancer with `externalTrafficPolicy: Local`."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _validate_external_traffic(spec: Obj) -> list[FieldError]:
    """Kubernetes' `validateServiceExternalTrafficPolicy`: the policy only where traffic comes
    from outside, the health check node port only where a load balancer needs it."""
    errs: list[FieldError] = []
    policy = spec.get("externalTrafficPolicy")
    if spec.get("type") == "ExternalName":
        return errs
    if not _externally_accessible(spec):
        if policy:
            errs.append(invalid("spec.externalTrafficPolicy", policy,
                                "may only be set for externally-accessible services"))
    elif not policy:
        errs.append(required("spec.externalTrafficPolicy"))
    hc = spec.get("healthCheckNodePort")
    if _needs_health_check(spec):
        if hc:  # unset: allocated at admission, after validation (kube-apiserver's order too)
            errs.extend(validate_port("spec.healthCheckNodePort", hc))
    elif hc:
        errs.append(invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is "
                            "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    return errs


def _port_key(port: Any) -> tuple[int, str] | None:
    """(port, protocol) of a Service port, None when it is not shaped like one (validation says
    why): how an update's port is matched with the old one's."""
    if not isinstance(port, dict) or not isinstance(port.get("port"), int):
        return None
    return port["port"], str(port.get("protocol", "TCP"))


async def _release_node_ports(ctx: AdmissionContext, spec: Obj, ospec: Obj, owner: str) -> None:
    """Release the node ports of the old spec `ospec` that no port of `spec` holds any more (a
    type change away from NodePort/LoadBalancer, a port dropped or given another node port), and
    its health check node port when `spec` no longer holds it."""
    kept = {p["nodePort"] for p in spec.get("ports") or [] if isinstance(p, dict)
            and isinstance(p.get("nodePort"), int)}
    if _needs_health_check(spec) and isinstance(spec.get("healthCheckNodePort"), int):
        kept.add(spec["healthCheckNodePort"])
    gone = [p["nodePort"] for p in ospec.get("ports") or []
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]
            and p["nodePort"] not in kept]
    old_hc = ospec.get("healthCheckNodePort")
    if isinstance(old_hc, int) and old_hc and old_hc not in kept:
        gone.append(old_hc)
    await _release_keys(ctx, [PORT_ALLOC_PREFIX + str(port) for port in gone], owner)


async def _give_back(ctx: AdmissionContext, keys: list[str]) -> None:
    """Delete reservations this request made (a later step of it failed)."""
    for key in keys:
        try:
            await ctx.store.delete(key)
        except NotFound:
            pass


async def _release_keys(ctx: AdmissionContext, keys: list[str], owner: str) -> None:
    """Delete the reservations under `keys` that `owner` holds (or that name no owner)."""
    for key in keys:
        try:
            held = await ctx.store.get(key)
            if held.get("owner") in (owner, None):
                await ctx.store.delete(key)
        except NotFound:
            pass


def _reservation(name: str, owner: str) -> Obj:
    """The record stored under an allocation key: what is reserved and for which Service."""
    return {"metadata": {"name": name}, "owner": owner}


def _owner(obj: Obj) -> str:
    md = obj.get("metadata") or {}
    return f"services/{md.get('namespace', '')}/{md.get('name', '')}"


async def _pick_free_ip(net: ipaddress.IPv4Network | ipaddress.IPv6Network, ctx: AdmissionContext,
                        owner: str) -> str | None:
    """A free address of `net` (never its network or broadcast address), reserved for `owner`.
    Random picks first (cheap while the range is sparse), then a scan of the reservations."""
    first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
    if last < first:
        return None
    for _ in range(_RANDOM_TRIES):
        candidate = str(ipaddress.ip_address(random.randint(first, last)))
        try:
            await ctx.store.create(IP_ALLOC_PREFIX + candidate, _reservation(candidate, owner))
            return candidate
        except AlreadyExists:
            continue
    listing = await ctx.store.list(IP_ALLOC_PREFIX)
    used = {str((item.get("metadata") or {}).get("name", "")) for item in listing.items}
    for n in range(first, last + 1):
        candidate = str(ipaddress.ip_address(n))
        if candidate in used:
            continue
        try:
            await ctx.store.create(IP_ALLOC_PREFIX + candidate, _reservation(candidate, owner))
            return candidate
        except AlreadyExists:
            continue
    return None


async def _allocate_node_port(ctx: AdmissionContext, owner: str, wanted: Any, path: str, *,
                              health_check: bool = False) -> tuple[int, FieldError | None]:
    """Reserve `wanted` (or, when unset, a free port) of the node port range for `owner`; the
    error is at `path`. `health_check`: the Service's health check node port (its messages say
    so, as kube-apiserver's)."""
    lo, hi = ctx.node_port_range
    if wanted:
        what = f"failed to allocate requested HealthCheck NodePort {wanted}: " if health_check else ""
        if not isinstance(wanted, int) or isinstance(wanted, bool):
            return 0, invalid(path, wanted, "must be an integer")
        if not lo <= wanted <= hi:
            return 0, invalid(path, wanted, f"{what}provided port is not in the valid range. "
                              f"The range of valid ports is {lo}-{hi}")
        try:
            await ctx.store.create(PORT_ALLOC_PREFIX + str(wanted), _reservation(str(wanted), owner))
        except AlreadyExists:
            return 0, invalid(path, wanted, f"{what}provided port is already allocated")
        return wanted, None
    start = random.randint(lo, hi)
    for offset in range(hi - lo + 1):
        candidate = lo + (start - lo + offset) % (hi - lo + 1)
        try:
            await ctx.store.create(PORT_ALLOC_PREFIX + str(candidate), _reservation(str(candidate), owner))
            return candidate, None
        except AlreadyExists:
            continue
    return 0, invalid(path, 0, "range is full")
