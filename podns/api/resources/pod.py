"""Pods: defaults, validation, the mostly-immutable spec, graceful deletion and printing.

A new Pod starts `Pending` with its QoS class; clients may not set status on create. After
creation only the fields Kubernetes lets change may change (container images,
activeDeadlineSeconds, added tolerations, terminationGracePeriodSeconds, removing scheduling
gates, and nodeName when the pod is bound); anything else is a 422 with Kubernetes' message.
A new Pod naming `spec.runtimeClassName` is admitted as Kubernetes' RuntimeClass plugin does
(`runtimeclass.admit_runtime_class`: 403 when the class does not exist). Deleting a scheduled,
unfinished Pod is graceful (`terminationGracePeriodSeconds`) so that the
node agent can stop it; an unscheduled or finished one goes at once.
"""

from __future__ import annotations

import copy
from typing import Any

from podns.api.resources import _printing as pr
from podns.api.resources._kind import KindStrategy
from podns.api.resources._podspec import (
    DEFAULT_TERMINATION_GRACE_SECONDS,
    default_pod_spec,
    qos_class,
    validate_pod_spec,
)
from podns.api.resources._printing import AGE
from podns.api.resources._validation import dig, forbidden
from podns.api.resources.base import AdmissionContext, Column, FieldError, Obj
from podns.api.resources.runtimeclass import admit_runtime_class

POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
    "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
    "previously negative)"
)


class PodStrategy(KindStrategy):
    schema_type = "core.v1.Pod"
    subresources = ("status", "binding", "eviction", "log", "exec", "attach", "portforward")
    selectable_fields = (
        "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
        "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName",
    )

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec"))}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_pod_spec(spec)
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec.setdefault("priority", 0)
        # what the ServiceAccount admission plugin fills in on a real cluster
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        if isinstance(obj.get("status"), dict):
            obj["status"].setdefault("phase", "Pending")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        return validate_pod_spec("spec", obj.get("spec"))

    async def admit(self, obj: Obj, old: Obj | None, ctx: AdmissionContext) -> list[FieldError]:
        if old is None:  # the RuntimeClass plugin handles creation only (the field is immutable)
            await admit_runtime_class(obj, ctx.store)
        return []

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
        if _mutable_view(nspec, ospec) != _mutable_view(ospec, ospec):
            return [forbidden("spec", POD_UPDATE_MESSAGE)]
        return []

    def deletion_grace_seconds(self, obj: Obj, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        phase = dig(obj, "status", "phase", default="")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if requested is not None:
            return max(0, requested)
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
        return max(0, int(grace)) if isinstance(grace, int) else DEFAULT_TERMINATION_GRACE_SECONDS

    def field_value(self, obj: Obj, path: str) -> str | None:
        if path == "spec.hostNetwork":
            return "true" if dig(obj, "spec", "hostNetwork", default=False) else "false"
        return super().field_value(obj, path)

    # -- printing ------------------------------------------------------------------------------

    def columns(self) -> list[Column]:
        return [
            Column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            Column("Status", description="The aggregate status of the containers in this pod."),
            Column("Restarts",
                description=(
                    "The number of times the containers in this pod have been restarted and when the "
                    "last container in this pod has restarted."
                )),
            AGE,
            Column("IP", priority=1,
                description=(
                    "podIP address allocated to the pod. Routable at least within the cluster. Empty "
                    "if not yet allocated."
                )),
            Column("Node", priority=1, description="NodeName indicates in which node this pod is scheduled."),
            Column("Nominated Node", priority=1,
                description=(
                    "nominatedNodeName is set only when this pod preempts other pods on the node, but "
                    "it cannot be scheduled right away as preemption victims receive their graceful "
                    "termination periods."
                )),
            Column("Readiness Gates", priority=1,
                description=(
                    "If specified, all readiness gates will be evaluated for pod readiness."
                )),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready, total, restarts, last_restart, reason = pod_summary(obj)
        restarts_cell = str(restarts)
        if restarts and last_restart is not None:
            restarts_cell = f"{restarts} ({pr.human_duration(last_restart)} ago)"
        gates = spec.get("readinessGates") or []
        gates_cell = "<none>"
        if gates:
            conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
            passed = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
            gates_cell = f"{passed}/{len(gates)}"
        return [
            f"{ready}/{total}",
            reason,
            restarts_cell,
            pr.or_none(status.get("podIP")),
            pr.or_none(spec.get("nodeName")),
            pr.or_none(status.get("nominatedNodeName")),
            gates_cell,
        ]


def _mutable_view(spec: Obj, old: Obj) -> Obj:
    """`spec` with the fields a pod update may change replaced by `old`'s values."""
    view = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        olds = old.get(key) or []
        for i, ctr in enumerate(view.get(key) or []):
            if isinstance(ctr, dict) and i < len(olds) and isinstance(olds[i], dict):
                ctr["image"] = olds[i].get("image")
                if "imagePullPolicy" not in olds[i]:
                    ctr.pop("imagePullPolicy", None)
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        if key in old:
            view[key] = old[key]
        else:
            view.pop(key, None)
    if not old.get("nodeName"):  # binding assigns the node once
        view.pop("nodeName", None)
    return view


def _exit_reason(term: Obj) -> str:
    return f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode')}"


def pod_summary(obj: Obj) -> tuple[int, int, int, float | None, str]:
    """(ready containers, containers, restarts, seconds since the last restart, status reason)
    as kubectl's `printPod` computes them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    last_restart: float | None = None
    reason = status.get("reason") or status.get("phase") or "Unknown"

    def note_restart(cs: Obj) -> None:
        nonlocal last_restart
        finished = dig(cs, "lastState", "terminated", "finishedAt")
        ago = pr.seconds_since(finished)
        if ago is not None and (last_restart is None or ago < last_restart):
            last_restart = ago

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        note_restart(cs)
        term = dig(cs, "state", "terminated")
        waiting = dig(cs, "state", "waiting")
        if term and term.get("exitCode") == 0:
            continue
        if term:
            reason = "Init:" + (term.get("reason") or _exit_reason(term))
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break
    if not initializing:
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            note_restart(cs)
            waiting = dig(cs, "state", "waiting")
            term = dig(cs, "state", "terminated")
            if waiting and waiting.get("reason"):
                reason = waiting["reason"]
            elif term and term.get("reason"):
                reason = term["reason"]
            elif term:
                reason = _exit_reason(term)
            elif dig(cs, "state", "running") is not None and cs.get("ready"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_cond = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
            reason = "Running" if ready_cond and ready_cond[0].get("status") == "True" else "NotReady"
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return ready, total, restarts, last_restart, reason
