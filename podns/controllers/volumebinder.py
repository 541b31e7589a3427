"""The volume binder: every Pending PersistentVolumeClaim is bound to a local volume at once,
and that volume is written as a PersistentVolume, as a dynamic provisioner would.

podns has no storage classes or static provisioning: a claim's storage is the node agent's
directory `volumes/pvc/<namespace>/<claimName>`, which exists as soon as a pod uses the claim and
outlives the pod. So binding is bookkeeping that makes `kubectl get pvc,pv` tell the truth:
`spec.volumeName` becomes `pvc-<claim uid>` (set once; the API server allows exactly that spec
change), the status becomes `Bound` with the claim's access modes and its requested storage as
capacity, and the PersistentVolume `pvc-<claim uid>` exists, Bound, with the claim in its
`claimRef`, reclaim policy Delete and a CSI source naming the node-local volume
(`driver: podns.io/node-local`, `volumeHandle: <namespace>/<claim>`), annotated
`pv.kubernetes.io/provisioned-by: podns.io/node-local`. When the claim is deleted, so is its
volume (reclaim policy Delete); a provisioned volume deleted while its claim lives comes back.
PersistentVolumes written by hand become `Available` (Kubernetes' PV controller does that) and
are never bound. A claim being deleted is left alone.

Pure part: `bound_status(claim)`, `volume_name(claim)`, `provisioned_volume(claim)`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES
from podns.objects import Obj, meta_of, object_key, split_key


def volume_name(claim: Mapping[str, Any]) -> str:
    """The volume a claim is bound to: the existing `spec.volumeName` or `pvc-<uid>`."""
    return str((claim.get("spec") or {}).get("volumeName") or f"pvc-{meta_of(claim).get('uid', '')}")


def bound_status(claim: Mapping[str, Any]) -> Obj:
    """The status of a bound claim: phase Bound, its access modes, its request as capacity."""
    spec = claim.get("spec") or {}
    status: Obj = {"phase": "Bound", "accessModes": list(spec.get("accessModes") or [])}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage:
        status["capacity"] = {"storage": storage}
    return status


#: the provisioner podns' volumes are written by (`pv.kubernetes.io/provisioned-by`, CSI driver)
PROVISIONER = "podns.io/node-local"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def provisioned_volume(claim: Mapping[str, Any]) -> Obj:
    """The PersistentVolume backing a bound claim, as a dynamic provisioner writes it."""
    spec = claim.get("spec") or {}
    md = meta_of(claim)
    ns, name = str(md.get("namespace", "")), str(md.get("name", ""))
    pv_spec: Obj = {
        "accessModes": list(spec.get("accessModes") or []),
        "persistentVolumeReclaimPolicy": "Delete",
        "volumeMode": spec.get("volumeMode") or "Filesystem",
        "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns,
                     "name": name, "uid": md.get("uid", "")},
        "csi": {"driver": PROVISIONER, "volumeHandle": f"{ns}/{name}"},
    }
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage:
        pv_spec["capacity"] = {"storage": storage}
    if spec.get("storageClassName"):
        pv_spec["storageClassName"] = spec["storageClassName"]
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
            "spec": pv_spec}


def is_provisioned_for(volume: Mapping[str, Any], claim_uid: str) -> bool:
    """Whether `volume` is one podns provisioned for the claim of `claim_uid`."""
    return ((meta_of(volume).get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
            and ((volume.get("spec") or {}).get("claimRef") or {}).get("uid") == claim_uid)


def needs_binding(claim: Mapping[str, Any]) -> bool:
    status = claim.get("status") or {}
    return not meta_of(claim).get("deletionTimestamp") and (
        status.get("phase") != "Bound" or not (claim.get("spec") or {}).get("volumeName"))


class VolumeBinder(workerloop.Controller):
    """Binds Pending claims to their local volume and keeps the PersistentVolumes that describe
    them. Queue keys: a claim's `namespace/name`; `("release", volume, claim uid)` after a claim
    is deleted; `("available", volume)` for a hand-written volume still Pending."""

    name = "persistentvolume-binder"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.claims = informers.get(PERSISTENTVOLUMECLAIMS)
        self.volumes = informers.get(PERSISTENTVOLUMES)
        #: claims we bound whose Bound status the cache has not shown yet: key -> uid
        self._bound: dict[str, str] = {}
        self.claims.add_handler(on_add=self._on_claim, on_update=lambda _o, n: self._on_claim(n),
                                on_delete=self._on_claim_deleted)
        self.volumes.add_handler(on_add=self._on_volume, on_update=lambda _o, n: self._on_volume(n),
                                 on_delete=self._on_volume)

    def _on_claim(self, claim: Obj) -> None:
        if needs_binding(claim) or self._volume_missing(claim):
            self.enqueue(object_key(claim))
        else:
            self._bound.pop(object_key(claim), None)

    def _on_claim_deleted(self, claim: Obj) -> None:
        self._bound.pop(object_key(claim), None)
        self.enqueue(("release", volume_name(claim), str(meta_of(claim).get("uid", ""))))

    def _on_volume(self, volume: Obj) -> None:
        ref = (volume.get("spec") or {}).get("claimRef") or {}
        if ref.get("namespace") and ref.get("name"):
            self.enqueue(f"{ref['namespace']}/{ref['name']}")  # a provisioned volume: its claim
        elif (volume.get("status") or {}).get("phase") in (None, "", "Pending"):
            self.enqueue(("available", meta_of(volume).get("name", "")))

    def _volume_missing(self, claim: Mapping[str, Any]) -> bool:
        """A bound claim whose provisioned volume the cache does not show (or cannot tell yet:
        the claims may list before the volumes; `sync` runs once both have)."""
        name = (claim.get("spec") or {}).get("volumeName")
        return bool(name) and not meta_of(claim).get("deletionTimestamp") \
            and (not self.volumes.has_synced or self.volumes.get(str(name)) is None)

    async def sync(self, key: Hashable) -> None:
        if isinstance(key, tuple):
            await (self._release(key[1], key[2]) if key[0] == "release" else self._make_available(key[1]))
            return
        claim = self.claims.get(str(key))
        if claim is None or meta_of(claim).get("deletionTimestamp"):
            return  # gone (its volume is released by the delete handler) or going
        if not needs_binding(claim):
            try:
                await self._provision(claim)
            except errors.NotFound:
                return
            except errors.Conflict:
                raise workerloop.StaleCache(str(key)) from None
            return
        if self._bound.get(str(key)) == meta_of(claim).get("uid"):
            return  # bound by us; the cache is behind
        ns, name = split_key(str(key))
        try:
            if not (claim.get("spec") or {}).get("volumeName"):
                claim = await self.client.patch(
                    PERSISTENTVOLUMECLAIMS, name,
                    {"metadata": {"resourceVersion": meta_of(claim).get("resourceVersion")},
                     "spec": {"volumeName": volume_name(claim)}}, ns)
            await self._provision(claim)
            await self.client.patch(PERSISTENTVOLUMECLAIMS, name, {"status": bound_status(claim)}, ns,
                                    subresource="status")
            self._bound[str(key)] = str(meta_of(claim).get("uid", ""))
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(str(key)) from None

    async def _provision(self, claim: Obj) -> None:
        """Make sure the bound claim's PersistentVolume exists and is Bound."""
        want = provisioned_volume(claim)
        name = str(want["metadata"]["name"])
        volume = self.volumes.get(name)
        if volume is None:
            try:
                volume = await self.client.create(PERSISTENTVOLUMES, want)
            except errors.AlreadyExists:
                volume = await self.client.get(PERSISTENTVOLUMES, name)
        if (volume.get("status") or {}).get("phase") != "Bound" and \
                is_provisioned_for(volume, str(meta_of(claim).get("uid", ""))):
            await self.client.update_status(PERSISTENTVOLUMES, {**volume, "status": {"phase": "Bound"}})

    async def _release(self, name: str, claim_uid: str) -> None:
        """The claim of `claim_uid` is gone: delete the volume provisioned for it (reclaim
        policy Delete)."""
        try:
            volume = await self.client.get(PERSISTENTVOLUMES, name)
            if is_provisioned_for(volume, claim_uid):
                await self.client.delete(PERSISTENTVOLUMES, name)
        except errors.NotFound:
            return

    async def _make_available(self, name: str) -> None:
        """A hand-written volume is Available, as Kubernetes' PV controller makes it."""
        volume = self.volumes.get(name)
        if volume is None or (volume.get("spec") or {}).get("claimRef") \
                or (volume.get("status") or {}).get("phase") not in (None, "", "Pending"):
            return
        try:
            await self.client.update_status(PERSISTENTVOLUMES, {**volume, "status": {"phase": "Available"}})
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(name) from None
