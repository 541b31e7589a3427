"""PersistentVolumeClaims: access modes and a storage request are required, the spec is
immutable after creation except `resources.requests` and `volumeAttributesClassName`, a new
claim is `Pending`; kubectl's STATUS/VOLUME/CAPACITY/ACCESS MODES/STORAGECLASS columns."""

from __future__ import annotations

import copy
from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import (
    dig,
    forbidden,
    invalid,
    not_supported,
    required,
    validate_label_selector,
)
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects.quantity import parse_quantity
from podns.objects.wellknown import BETA_STORAGE_CLASS_ANNOTATION

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
SHORT_MODES = {
    "ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP",
}
PVC_UPDATE_MESSAGE = (
    "spec is immutable after creation except resources.requests and volumeAttributesClassName "
    "for bound claims"
)


def validate_claim_spec(path: str, spec: Any) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    modes = spec.get("accessModes") or []
    if not modes:
        errs.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(not_supported(f"{path}.accessModes", mode, ACCESS_MODES))
    storage = dig(spec, "resources", "requests", "storage")
    if not storage:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        try:
            if parse_quantity(storage) <= 0:
                errs.append(invalid(f"{path}.resources[storage]", storage, "must be greater than zero"))
        except ValueError as exc:
            errs.append(invalid(f"{path}.resources[storage]", storage, str(exc)))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    errs.extend(validate_label_selector(f"{path}.selector", spec.get("selector")))
    return errs


class PersistentVolumeClaimStrategy(KindStrategy):
    schema_type = "core.v1.PersistentVolumeClaim"
    subresources = ("status",)

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        return validate_claim_spec("spec", obj.get("spec"))

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        nspec = copy.deepcopy(new.get("spec") or {})
        ospec = copy.deepcopy(old.get("spec") or {})
        for spec in (nspec, ospec):
            spec.get("resources", {}).pop("requests", None)
            spec.pop("volumeAttributesClassName", None)
        if not old.get("spec", {}).get("volumeName"):
            nspec.pop("volumeName", None)  # binding sets the volume once
            ospec.pop("volumeName", None)
        return [] if nspec == ospec else [forbidden("spec", PVC_UPDATE_MESSAGE)]

    def columns(self) -> list[Column]:
        return [
            Column("Status", description="phase represents the current phase of PersistentVolumeClaim."),
            Column("Volume",
                description=(
                    "volumeName is the binding reference to the PersistentVolume backing this claim."
                )),
            Column("Capacity",
                description=(
                    "capacity represents the actual resources of the underlying volume."
                )),
            Column("Access Modes",
                description=(
                    "accessModes contains the desired access modes the volume should have."
                )),
            Column("StorageClass",
                description=(
                    "storageClassName is the name of the StorageClass required by the claim."
                )),
            Column("VolumeAttributesClass",
                description=(
                    "volumeAttributesClassName may be used to set the VolumeAttributesClass used by "
                    "this claim."
                )),
            AGE,
            Column("VolumeMode", priority=1,
                description=(
                    "volumeMode defines what type of volume is required by the claim."
                )),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        phase = "Terminating" if dig(obj, "metadata", "deletionTimestamp") else status.get("phase", "")
        capacity = modes = ""
        if spec.get("volumeName"):
            modes = ",".join(SHORT_MODES.get(m, m) for m in status.get("accessModes") or [])
            capacity = str(dig(status, "capacity", "storage", default=""))
        storage_class = spec.get("storageClassName") or dig(
            obj, "metadata", "annotations", BETA_STORAGE_CLASS_ANNOTATION, default="")
        return [
            phase, spec.get("volumeName", ""), capacity, modes, storage_class,
            spec.get("volumeAttributesClassName") or "<unset>", spec.get("volumeMode") or "<unset>",
        ]
