"""PersistentVolumes (core/v1, cluster-scoped): defaults, validation with Kubernetes' messages
and paths, kubectl's columns.

podns provisions every claim dynamically and node-locally (docs/node.md): the volume binder binds
a claim to `pvc-<claim uid>` and writes that PersistentVolume, as a dynamic provisioner does, so
`kubectl get pv` and `describe pv` show what backs each claim. PersistentVolumes written by hand
are stored, validated and made `Available` by the binder, but no claim is ever bound to them
(podns does no static provisioning).

- Defaults (`SetDefaults_PersistentVolume`): `persistentVolumeReclaimPolicy: Retain`,
  `volumeMode: Filesystem`; a new volume's status is `{phase: Pending}`.
- Validation (`ValidatePersistentVolumeSpec`): access modes and a `storage` capacity (the only
  capacity key) are required; exactly one volume source (`must specify a volume type`, `may not
  specify more than 1 volume type`); reclaim policy Delete, Recycle or Retain; volume mode Block
  or Filesystem; hostPath and local need a path, local also node affinity. The spec is mutable
  (Kubernetes allows resizing and rebinding); the volume source may not change.
- Columns: NAME CAPACITY ACCESS MODES RECLAIM POLICY STATUS CLAIM STORAGECLASS
  VOLUMEATTRIBUTESCLASS REASON AGE, VOLUMEMODE with `-o wide`.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE
from podns.api.resources._validation import as_object, dig, forbidden, invalid, not_supported, required
from podns.api.resources.base import Column, FieldError, Obj
from podns.api.resources.persistentvolumeclaim import ACCESS_MODES, SHORT_MODES, VOLUME_MODES
from podns.objects.quantity import parse_quantity
from podns.objects.wellknown import BETA_STORAGE_CLASS_ANNOTATION

RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
#: the volume sources of a PersistentVolumeSpec (Kubernetes 1.33)
SOURCES = ("awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc",
           "flexVolume", "flocker", "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local",
           "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO",
           "storageos", "vsphereVolume")


class PersistentVolumeStrategy(KindStrategy):
    schema_type = "core.v1.PersistentVolume"
    subresources = ("status",)
    namespaced = False

    def initial_status(self, obj: Obj) -> Obj:
        return {"phase": "Pending"}

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        spec = as_object(obj.get("spec"))
        errs: list[FieldError] = []
        modes = spec.get("accessModes") or []
        if not modes:
            errs.append(required("spec.accessModes"))
        for mode in modes:
            if mode not in ACCESS_MODES:
                errs.append(not_supported("spec.accessModes", mode, ACCESS_MODES))
        capacity = spec.get("capacity") or {}
        if not capacity:
            errs.append(required("spec.capacity"))
        for key, value in capacity.items() if isinstance(capacity, dict) else ():
            if key != "storage":
                errs.append(not_supported("spec.capacity", key, ["storage"]))
                continue
            try:
                if parse_quantity(value) <= 0:
                    errs.append(invalid("spec.capacity[storage]", value, "must be greater than zero"))
            except (ValueError, TypeError) as exc:
                errs.append(invalid("spec.capacity[storage]", value, str(exc)))
        given = [s for s in SOURCES if spec.get(s) is not None]
        if not given:
            errs.append(required("spec", "must specify a volume type"))
        for extra in given[1:]:
            errs.append(forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
        for source in ("hostPath", "local"):
            if spec.get(source) is not None and not dig(spec, source, "path"):
                errs.append(required(f"spec.{source}.path"))
        if spec.get("local") is not None and not spec.get("nodeAffinity"):
            errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
        if spec.get("csi") is not None:
            for field in ("driver", "volumeHandle"):
                if not dig(spec, "csi", field):
                    errs.append(required(f"spec.csi.{field}"))
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy is not None and policy not in RECLAIM_POLICIES:
            errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
        mode = spec.get("volumeMode")
        if mode is not None and mode not in VOLUME_MODES:
            errs.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        nspec, ospec = new.get("spec") or {}, old.get("spec") or {}
        errs: list[FieldError] = []
        for source in SOURCES:
            if ospec.get(source) is not None and nspec.get(source) != ospec.get(source):
                errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource "
                                      "is immutable after creation"))
                break
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Capacity", description="capacity is the description of the persistent volume's "
                   "resources and capacity."),
            Column("Access Modes", description="accessModes contains all ways the volume can be "
                   "mounted."),
            Column("Reclaim Policy", description="persistentVolumeReclaimPolicy defines what happens "
                   "to a persistent volume when released from its claim."),
            Column("Status", description="phase indicates if a volume is available, bound to a "
                   "claim, or released by a claim."),
            Column("Claim", description="claimRef is part of a bi-directional binding between "
                   "PersistentVolume and PersistentVolumeClaim."),
            Column("StorageClass", description="storageClassName is the name of StorageClass to "
                   "which this persistent volume belongs."),
            Column("VolumeAttributesClass", description="Name of VolumeAttributesClass to which "
                   "this persistent volume belongs."),
            Column("Reason", description="reason is a brief CamelCase string that describes any "
                   "failure."),
            AGE,
            Column("VolumeMode", priority=1, description="volumeMode defines if a volume is "
                   "intended to be used with a formatted filesystem or to remain in raw block "
                   "state."),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ref = spec.get("claimRef") or {}
        claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""
        phase = "Terminating" if dig(obj, "metadata", "deletionTimestamp") else status.get("phase", "")
        storage_class = spec.get("storageClassName") or dig(
            obj, "metadata", "annotations", BETA_STORAGE_CLASS_ANNOTATION, default="")
        return [
            str(dig(spec, "capacity", "storage", default="")),
            ",".join(SHORT_MODES.get(m, m) for m in spec.get("accessModes") or []),
            spec.get("persistentVolumeReclaimPolicy", ""), phase, claim, storage_class,
            spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""),
            spec.get("volumeMode") or "<unset>",
        ]
