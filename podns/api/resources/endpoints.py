"""Core v1 Endpoints: address/port validation and the ENDPOINTS column (`ip:port`, three at
most, then `+ N more...`)."""

from __future__ import annotations

import ipaddress
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    BAD_IP_MESSAGE,
    duplicate,
    invalid,
    not_supported,
    required,
    validate_port,
)
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import names

PROTOCOLS = ["SCTP", "TCP", "UDP"]


def validate_ip(path: str, value: Any) -> list[FieldError]:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [invalid(path, value, BAD_IP_MESSAGE)]
    return []


class EndpointsStrategy(KindStrategy):
    schema_type = "core.v1.Endpoints"
    allow_create_on_update = True  # kube-apiserver: a PUT may create Endpoints

    def set_defaults(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or []:
            for port in (subset or {}).get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, subset in enumerate(obj.get("subsets") or []):
            p = f"subsets[{i}]"
            if not isinstance(subset, dict):
                errs.append(invalid(p, subset, "must be an object"))
                continue
            for field in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(subset.get(field) or []):
                    errs.extend(validate_ip(f"{p}.{field}[{j}].ip", (addr or {}).get("ip")))
                    host = (addr or {}).get("hostname")
                    if host:
                        errs.extend(invalid(f"{p}.{field}[{j}].hostname", host, m)
                                    for m in names.is_dns1123_label(host))
            ports = subset.get("ports") or []
            seen: set[str] = set()
            for j, port in enumerate(ports):
                pp = f"{p}.ports[{j}]"
                name = (port or {}).get("name") or ""
                if len(ports) > 1 and not name:
                    errs.append(required(f"{pp}.name"))
                elif name:
                    errs.extend(invalid(f"{pp}.name", name, m) for m in names.is_dns1123_label(name))
                    if name in seen:
                        errs.append(duplicate(f"{pp}.name", name))
                    seen.add(name)
                errs.extend(validate_port(f"{pp}.port", (port or {}).get("port")))
                proto = (port or {}).get("protocol", "TCP")
                if proto not in PROTOCOLS:
                    errs.append(not_supported(f"{pp}.protocol", proto, PROTOCOLS))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Endpoints", description="Endpoints of the service"),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [format_endpoints(obj)]


def format_endpoints(obj: Obj, limit: int = 3) -> str:
    """kubectl's formatEndpoints: `ip:port` for each address and port of every subset."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    more = False
    for subset in subsets:
        addresses = [a.get("ip", "") for a in subset.get("addresses") or []]
        ports = subset.get("ports") or []
        pairs = [(ip, None) for ip in addresses] if not ports else [
            (ip, port.get("port")) for port in ports for ip in addresses
        ]
        count += len(pairs)
        for ip, port in pairs:
            if len(shown) == limit:
                more = True
                break
            if port is None:
                shown.append(ip)
            else:
                shown.append(f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}")
    out = ",".join(shown)
    return f"{out} + {count - limit} more..." if more else out
