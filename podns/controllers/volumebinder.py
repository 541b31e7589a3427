"""The volume binder: every Pending PersistentVolumeClaim is bound to a local volume at once.

podns has no PersistentVolume objects or storage classes: a claim's storage is the node agent's
directory `volumes/pvc/<namespace>/<claimName>`, which exists as soon as a pod uses the claim and
outlives the pod. So binding is bookkeeping that makes `kubectl get pvc` tell the truth, as a
dynamic provisioner would: `spec.volumeName` becomes `pvc-<claim uid>` (set once; the API server
allows exactly that spec change), then the status becomes `Bound` with the claim's access modes
and its requested storage as capacity. A claim being deleted is left alone.

Pure part: `bound_status(claim)` and `volume_name(claim)`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import PERSISTENTVOLUMECLAIMS
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


def needs_binding(claim: Mapping[str, Any]) -> bool:
    status = claim.get("status") or {}
    return not meta_of(claim).get("deletionTimestamp") and (
        status.get("phase") != "Bound" or not (claim.get("spec") or {}).get("volumeName"))


class VolumeBinder(workerloop.Controller):
    """Binds Pending claims to their local volume."""

    name = "persistentvolume-binder"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.claims = informers.get(PERSISTENTVOLUMECLAIMS)
        #: claims we bound whose Bound status the cache has not shown yet: key -> uid
        self._bound: dict[str, str] = {}
        self.claims.add_handler(on_add=self._on_claim, on_update=lambda _o, n: self._on_claim(n),
                                on_delete=lambda c: self._bound.pop(object_key(c), None))

    def _on_claim(self, claim: Obj) -> None:
        if needs_binding(claim):
            self.enqueue(object_key(claim))
        else:
            self._bound.pop(object_key(claim), None)

    async def sync(self, key: Hashable) -> None:
        claim = self.claims.get(str(key))
        if claim is None or not needs_binding(claim):
            return  # gone or bound
        if self._bound.get(str(key)) == meta_of(claim).get("uid"):
            return  # bound by us; the cache is behind
        ns, name = split_key(str(key))
        try:
            if not (claim.get("spec") or {}).get("volumeName"):
                claim = await self.client.patch(
                    PERSISTENTVOLUMECLAIMS, name,
                    {"metadata": {"resourceVersion": meta_of(claim).get("resourceVersion")},
                     "spec": {"volumeName": volume_name(claim)}}, ns)
            await self.client.patch(PERSISTENTVOLUMECLAIMS, name, {"status": bound_status(claim)}, ns,
                                    subresource="status")
            self._bound[str(key)] = str(meta_of(claim).get("uid", ""))
        except errors.NotFound:
            return
        except errors.Conflict:
            raise workerloop.StaleCache(str(key)) from None
