"""Nodes (cluster-scoped): status written by the node agent, `spec.unschedulable` selectable,
and kubectl's STATUS/ROLES/VERSION columns."""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig
from podns.api.resources.base import Column, Obj
from podns.objects.wellknown import LEGACY_NODE_ROLE_LABEL, NODE_ROLE_LABEL_PREFIX


class NodeStrategy(KindStrategy):
    schema_type = "core.v1.Node"
    namespaced = False
    subresources = ("status",)
    selectable_fields = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        """A node registers itself with its status (addresses, capacity), as kubelets do."""

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

