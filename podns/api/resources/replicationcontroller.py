"""ReplicationControllers (core/v1): the ReplicaSet's predecessor, with a plain map as selector.

Served because kubectl still reaches for them: `apply --prune` without `--prune-allowlist` maps
every kind of its default list (ReplicationController among them) and `cluster-info dump` lists
them, both failing on a server that does not know the kind; and old manifests still use them.
The replication manager (`podns.controllers.replicaset`) runs them as ReplicaSets.

Defaults (`SetDefaults_ReplicationController`): an empty selector and empty labels take the
template's labels, `replicas: 1`, the template's PodSpec defaults; status starts
`{replicas: 0}`. Validation (`ValidateReplicationControllerSpec`): non-negative replicas and
minReadySeconds, a non-empty selector of valid labels, a template whose labels it selects,
restartPolicy Always. The selector may change (unlike apps/v1 kinds). Columns as ReplicaSets.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._validation import dig, required, validate_labels
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import FieldError, Obj
from podns.api.resources.replicaset import ReplicaSetStrategy


def as_label_selector(selector: Any) -> Any:
    """A ReplicationController's map selector as the LabelSelector ReplicaSets have."""
    return {"matchLabels": selector} if isinstance(selector, dict) else selector


class ReplicationControllerStrategy(ReplicaSetStrategy):
    schema_type = "core.v1.ReplicationController"

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        labels = dig(spec, "template", "metadata", "labels")
        if isinstance(labels, dict) and labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            md = obj.setdefault("metadata", {})
            if isinstance(md, dict) and not md.get("labels"):
                md["labels"] = dict(labels)
        super().set_defaults(obj)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        errs = non_negative("spec.replicas", spec.get("replicas"))
        errs.extend(non_negative("spec.minReadySeconds", spec.get("minReadySeconds")))
        selector = spec.get("selector")
        if not selector:
            errs.append(required("spec.selector"))
        else:
            errs.extend(validate_labels("spec.selector", selector))
        if spec.get("template") is None:
            errs.append(required("spec.template"))
        else:
            errs.extend(w.validate_template("spec.template", spec["template"],
                                            as_label_selector(selector) if selector else None,
                                            deadline_kind="ReplicationController"))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []  # core/v1 lets the selector change

    def cells(self, obj: Obj) -> list[Any]:
        view = {**obj, "spec": {**(obj.get("spec") or {}),
                                "selector": as_label_selector(dig(obj, "spec", "selector"))}}
        return super().cells(view)
