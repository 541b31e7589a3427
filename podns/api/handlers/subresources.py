"""The kind-independent parts of the `scale` and `binding` subresources.

`scale` presents a workload (StatefulSet, Deployment, ReplicaSet, ReplicationController) as an
`autoscaling/v1 Scale`: `spec.replicas` maps
to the workload's, `status.replicas` and `status.selector` (query syntax) come from the
workload. Writing a Scale writes only the workload's `spec.replicas`.
`binding` (POST pods/<name>/binding) assigns an unscheduled Pod to a node, as the scheduler
does; binding a Pod that already has a node is a 409 Conflict.
"""

from __future__ import annotations

import copy
from typing import Any

from podns.api import statuserror
from podns.api.handlers.selection import selector_string

Obj = dict[str, Any]


def to_scale(obj: Obj) -> Obj:
    """The Scale view of a workload."""
    md = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    st = obj.get("status") or {}
    scale_meta = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                       "creationTimestamp") if k in md}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": int(spec.get("replicas", 1) or 0)},
        "status": {"replicas": int(st.get("replicas", 0) or 0),
                   "selector": selector_string(_label_selector(obj))},
    }


def _label_selector(obj: Obj) -> Obj | None:
    """The workload's selector as a LabelSelector (a ReplicationController's is a plain map)."""
    selector = (obj.get("spec") or {}).get("selector")
    if obj.get("kind") == "ReplicationController" and isinstance(selector, dict):
        return {"matchLabels": selector}
    return selector if isinstance(selector, dict) else None


def from_scale(obj: Obj, scale: Any) -> Obj:
    """The workload with the Scale's `spec.replicas` (and its resourceVersion precondition)."""
    if not isinstance(scale, dict):
        raise statuserror.bad_request("the body of the request must be a Scale object")
    kind, api_version = scale.get("kind"), scale.get("apiVersion")
    if kind not in (None, "", "Scale") or api_version not in (None, "", "autoscaling/v1"):
        raise statuserror.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind (Scale)")
    replicas = (scale.get("spec") or {}).get("replicas")
    md = obj.get("metadata") or {}
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise statuserror.invalid("Scale", md.get("name", ""), [_replicas_error(replicas)],
                             "autoscaling")
    out = copy.deepcopy(obj)
    out.setdefault("spec", {})["replicas"] = replicas
    rv = (scale.get("metadata") or {}).get("resourceVersion")
    out["metadata"]["resourceVersion"] = rv if rv else md.get("resourceVersion")
    return out


def _replicas_error(value: Any) -> Any:
    from podns.api.resources.base import FieldError

    return FieldError("spec.replicas", "FieldValueInvalid",
                      f"Invalid value: {value!r}: must be greater than or equal to 0")


def bind(pod: Obj, binding: Any) -> Obj:
    """The Pod bound to the Binding's target node."""
    if not isinstance(binding, dict):
        raise statuserror.bad_request("the body of the request must be a Binding object")
    target = binding.get("target") or {}
    node = target.get("name")
    md = pod.get("metadata") or {}
    name = md.get("name", "")
    if not node:
        from podns.api.resources.base import FieldError

        raise statuserror.invalid("Binding", name, [FieldError(
            "target.name", "FieldValueRequired", "Required value")])
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise statuserror.conflict("pods", name, "", f"pod {name} is already assigned to node "
                              f'"{current}"')
    if md.get("deletionTimestamp"):
        raise statuserror.conflict("pods", name, "", f"pod {name} is being deleted, cannot be assigned "
                              "to a host")
    out = copy.deepcopy(pod)
    out.setdefault("spec", {})["nodeName"] = node
    return out
