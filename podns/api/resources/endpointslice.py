"""discovery.k8s.io/v1 EndpointSlices: addressType (immutable), endpoints and ports as
Kubernetes validates them, and the ADDRESSTYPE/PORTS/ENDPOINTS columns."""

from __future__ import annotations

import ipaddress
from typing import Any

from podns.api.resources import _printing as pr
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    duplicate,
    immutable,
    invalid,
    not_supported,
    required,
    too_long,
    validate_port,
)
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import names

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
MAX_ENDPOINTS = 1000  # Kubernetes' maxEndpoints
MAX_PORTS = 20000  # Kubernetes' maxPorts
MAX_ADDRESSES = 100  # per endpoint


def _address_errors(path: str, value: Any, address_type: str) -> list[FieldError]:
    text = str(value)
    if address_type == "FQDN":
        return [invalid(path, value, m) for m in names.is_dns1123_subdomain(text)]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        addr = None
    want = 4 if address_type == "IPv4" else 6
    if addr is None or addr.version != want:
        return [invalid(path, value, f"must be a valid {address_type} address")]
    return []


class EndpointSliceStrategy(KindStrategy):
    schema_type = "discovery.v1.EndpointSlice"

    def set_defaults(self, obj: Obj) -> None:
        for port in obj.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        atype = obj.get("addressType")
        if not atype:
            errs.append(required("addressType"))
        elif atype not in ADDRESS_TYPES:
            errs.append(not_supported("addressType", atype, ADDRESS_TYPES))
        endpoints = obj.get("endpoints") or []
        if len(endpoints) > MAX_ENDPOINTS:
            errs.append(too_long("endpoints", MAX_ENDPOINTS))
        for i, ep in enumerate(endpoints):
            p = f"endpoints[{i}]"
            if not isinstance(ep, dict):
                errs.append(invalid(p, ep, "must be an object"))
                continue
            addresses = ep.get("addresses") or []
            if not addresses:
                errs.append(required(f"{p}.addresses", "must contain at least 1 address"))
            elif len(addresses) > MAX_ADDRESSES:
                errs.append(too_long(f"{p}.addresses", MAX_ADDRESSES))
            if atype in ADDRESS_TYPES:
                for j, addr in enumerate(addresses):
                    errs.extend(_address_errors(f"{p}.addresses[{j}]", addr, atype))
            if ep.get("hostname"):
                errs.extend(invalid(f"{p}.hostname", ep["hostname"], m)
                            for m in names.is_dns1123_label(str(ep["hostname"])))
            if ep.get("nodeName"):
                errs.extend(invalid(f"{p}.nodeName", ep["nodeName"], m)
                            for m in names.is_dns1123_subdomain(str(ep["nodeName"])))
        ports = obj.get("ports") or []
        if len(ports) > MAX_PORTS:
            errs.append(too_long("ports", MAX_PORTS))
        seen: set[str] = set()
        for i, port in enumerate(ports):
            p = f"ports[{i}]"
            if not isinstance(port, dict):
                errs.append(invalid(p, port, "must be an object"))
                continue
            name = port.get("name") or ""
            if name:
                errs.extend(invalid(f"{p}.name", name, m) for m in names.is_dns1123_label(name))
            if name in seen:
                errs.append(duplicate(f"{p}.name", name))
            seen.add(name)
            if port.get("port") is not None:
                errs.extend(validate_port(f"{p}.port", port["port"]))
            proto = port.get("protocol", "TCP")
            if proto not in PROTOCOLS:
                errs.append(not_supported(f"{p}.protocol", proto, PROTOCOLS))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return immutable("addressType", new.get("addressType"), old.get("addressType"))

    def columns(self) -> list[Column]:
        return [
            Column("AddressType",
                description=(
                    "addressType specifies the type of address carried by this EndpointSlice."
                )),
            Column("Ports",
                description=(
                    "ports specifies the list of network ports exposed by each endpoint in this "
                    "slice."
                )),
            Column("Endpoints", description="endpoints is a list of unique endpoints in this slice."),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        ports = []
        for port in obj.get("ports") or []:
            if port.get("port") is not None:
                ports.append(str(port["port"]))
            elif port.get("name"):
                ports.append(str(port["name"]))
            else:
                ports.append("*")
        addresses = [str(a) for ep in obj.get("endpoints") or [] for a in (ep.get("addresses") or [])]
        return [obj.get("addressType", ""), pr.list_with_more(ports), pr.list_with_more(addresses)]
