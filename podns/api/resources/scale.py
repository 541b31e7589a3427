"""The Table of a workload's `scale` subresource (`kubectl get deploy web --subresource=scale`):
NAME DESIRED AVAILABLE AGE, as kube-apiserver prints an autoscaling/v1 Scale."""

from __future__ import annotations

from typing import Any

from podns.api.resources._printing import AGE
from podns.api.resources.base import Column, Obj, ResourceType, Strategy


class ScaleStrategy(Strategy):
    """Printing only: a Scale is never stored, it is a view of its workload."""

    def columns(self) -> list[Column]:
        return [
            Column("Desired", type="integer", description="replicas is the desired number of "
                   "instances for the scaled object."),
            Column("Available", type="integer", description="replicas is the actual number of "
                   "observed instances of the scaled object."),
            AGE,
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [int((obj.get("spec") or {}).get("replicas") or 0),
                int((obj.get("status") or {}).get("replicas") or 0)]


#: what the Table renderer needs to know of a Scale
SCALE = ResourceType(group="autoscaling", version="v1", resource="scale", kind="Scale",
                     singular="scale", namespaced=True, strategy=ScaleStrategy(), verbs=("get",))
