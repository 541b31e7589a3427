"""Nodes (cluster-scoped): status written by the node agent, `spec.unschedulable` selectable,
the pod CIDRs' rules, and kubectl's STATUS/ROLES/VERSION columns.

`spec.podCIDR` / `spec.podCIDRs` follow Kubernetes (`ValidateNode`, `ValidateNodeUpdate` in
pkg/apis/core/validation, and the v1 conversion that keeps the two fields in step): each entry a
valid CIDR; two entries only as one IPv4 and one IPv6 CIDR, never more; `podCIDR` is
`podCIDRs[0]` (either one given fills the other; both given and different is refused, where
Kubernetes' conversion silently keeps `podCIDRs[0]`); once set, they may not change (only from
empty to a value, as the node IPAM controller or the node's agent assigns them)."""

from __future__ import annotations

import ipaddress
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig, forbidden, invalid
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.wellknown import LEGACY_NODE_ROLE_LABEL, NODE_ROLE_LABEL_PREFIX


class NodeStrategy(KindStrategy):
    schema_type = "core.v1.Node"
    namespaced = False
    subresources = ("status",)
    selectable_fields = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        """A node registers itself with its status (addresses, capacity), as kubelets do."""

    def set_defaults(self, obj: Obj) -> None:
        """One of `podCIDR` / `podCIDRs` given: the other follows (Kubernetes' v1 conversion)."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        cidrs = spec.get("podCIDRs")
        if not cidrs and spec.get("podCIDR"):
            spec["podCIDRs"] = [spec["podCIDR"]]
        elif isinstance(cidrs, list) and cidrs and not spec.get("podCIDR"):
            spec["podCIDR"] = cidrs[0]

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        return pod_cidr_errors(obj.get("spec") or {})

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """The pod CIDRs go from empty to set, never change after (ValidateNodeUpdate)."""
        before = list(dig(old, "spec", "podCIDRs", default=None) or [])
        after = list(dig(new, "spec", "podCIDRs", default=None) or [])
        if before and before != after:
            return [forbidden("spec.podCIDRs", 'node updates may not change podCIDR except from "" to valid')]
        return []

    def field_value(self, obj: Obj, path: str) -> str | None:
        if path == "spec.unschedulable":
            return "true" if dig(obj, "spec", "unschedulable", default=False) else "false"
        return super().field_value(obj, path)

    def columns(self) -> list[Column]:
        return [
            Column("Status", description="The status of the node"),
            Column("Roles", description="The roles of the node"),
            AGE,
            Column("Version", description="Kubelet Version reported by the node."),
            Column("Internal-IP", priority=1,
                description=(
                    "List of addresses reachable to the node. Queried from cloud provider, if "
                    "available."
                )),
            Column("External-IP", priority=1,
                description=(
                    "List of addresses reachable to the node. Queried from cloud provider, if "
                    "available."
                )),
            Column("OS-Image", priority=1,
                description=(
                    "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 "
                    "(wheezy))."
                )),
            Column("Kernel-Version", priority=1,
                description=(
                    "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
                )),
            Column("Container-Runtime", priority=1,
                description=(
                    "ContainerRuntime Version reported by the node through runtime remote API (e.g. "
                    "containerd://1.4.2)."
                )),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        status = obj.get("status") or {}
        info = status.get("nodeInfo") or {}
        addresses = status.get("addresses") or []

        def address(kind: str) -> str:
            for addr in addresses:
                if addr.get("type") == kind:
                    return str(addr.get("address", ""))
            return "<none>"

        return [
            node_status(obj),
            node_roles(obj),
            info.get("kubeletVersion", ""),
            address("InternalIP"),
            address("ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]


#: Kubernetes' `IsValidCIDR` message
BAD_CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _cidr_version(value: Any) -> int | None:
    """4 or 6 for a CIDR (host bits allowed, as Kubernetes' ParseCIDRSloppy), None otherwise."""
    if not isinstance(value, str) or "/" not in value:
        return None
    try:
        return ipaddress.ip_network(value, strict=False).version
    except ValueError:
        return None


def pod_cidr_errors(spec: Obj) -> list[FieldError]:
    """ValidateNode's pod CIDR rules on a (defaulted) Node spec."""
    errs: list[FieldError] = []
    cidrs = spec.get("podCIDRs") or []
    versions = []
    for i, value in enumerate(cidrs):
        version = _cidr_version(value)
        if version is None:
            errs.append(invalid(f"spec.podCIDRs[{i}]", value, BAD_CIDR_MESSAGE))
        versions.append(version)
    if len(cidrs) > 1 and None not in versions and (len(cidrs) > 2 or versions[0] == versions[1]):
        errs.append(invalid("spec.podCIDRs", cidrs, "may specify no more than one CIDR for each IP family"))
    primary = spec.get("podCIDR")
    if primary and cidrs and primary != cidrs[0]:
        errs.append(invalid("spec.podCIDR", primary,
                            f"must match the first entry of spec.podCIDRs ({cidrs[0]})"))
    return errs


def node_status(obj: Obj) -> str:
    """`Ready`, `NotReady` or `Unknown`, plus `,SchedulingDisabled` when cordoned."""
    conds = {c.get("type"): c.get("status") for c in dig(obj, "status", "conditions", default=[])}
    ready = conds.get("Ready")
    parts = ["Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"]
    if dig(obj, "spec", "unschedulable", default=False):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(obj: Obj) -> str:
    roles: set[str] = set()
    for key, value in (dig(obj, "metadata", "labels", default={}) or {}).items():
        if key.startswith(NODE_ROLE_LABEL_PREFIX) and key[len(NODE_ROLE_LABEL_PREFIX):]:
            roles.add(key[len(NODE_ROLE_LABEL_PREFIX):])
        elif key == LEGACY_NODE_ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"

