"""The objects a Pod refers to by name: Secrets, ConfigMaps, PersistentVolumeClaims, its
ServiceAccount (Kubernetes' `podutil.VisitPodSecretNames` / `VisitPodConfigmapNames`).

Two readers must agree on this list: the node agent, which fetches what a pod it runs needs, and
the API server's Node authorizer, which lets a node read exactly those objects of the pods bound
to it. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]


@dataclass(slots=True)
class PodRefs:
    """Names (in the pod's namespace) of what a pod uses."""

    secrets: set[str] = field(default_factory=set)
    configmaps: set[str] = field(default_factory=set)
    pvcs: set[str] = field(default_factory=set)
    service_account: str = ""


def _name(value: Any, key: str = "name") -> str:
    return str(value.get(key) or "") if isinstance(value, Mapping) else ""


def _volume_refs(vol: Obj, refs: PodRefs) -> None:
    refs.secrets.add(_name(vol.get("secret"), "secretName"))
    refs.configmaps.add(_name(vol.get("configMap")))
    refs.pvcs.add(_name(vol.get("persistentVolumeClaim"), "claimName"))
    projected = vol.get("projected")
    for source in (projected.get("sources") or []) if isinstance(projected, Mapping) else []:
        if isinstance(source, Mapping):
            refs.secrets.add(_name(source.get("secret")))
            refs.configmaps.add(_name(source.get("configMap")))
    for key in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos", "azureFile"):
        src = vol.get(key)
        if isinstance(src, Mapping):
            refs.secrets.add(_name(src.get("secretRef")) or _name(src, "secretName"))


def _container_refs(c: Obj, refs: PodRefs) -> None:
    for item in c.get("envFrom") or []:
        if isinstance(item, Mapping):
            refs.configmaps.add(_name(item.get("configMapRef")))
            refs.secrets.add(_name(item.get("secretRef")))
    for env in c.get("env") or []:
        vf = env.get("valueFrom") if isinstance(env, Mapping) else None
        if isinstance(vf, Mapping):
            refs.configmaps.add(_name(vf.get("configMapKeyRef")))
            refs.secrets.add(_name(vf.get("secretKeyRef")))


def pod_references(pod: Obj) -> PodRefs:
    """Everything `pod` refers to by name: volumes (secret, configMap, projected sources,
    persistentVolumeClaim, the secretRefs of volume plugins), env/envFrom of every container
    (init and ephemeral included), imagePullSecrets and the ServiceAccount."""
    refs = PodRefs()
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return refs
    for vol in spec.get("volumes") or []:
        if isinstance(vol, Mapping):
            _volume_refs(vol, refs)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                _container_refs(c, refs)
    for ref in spec.get("imagePullSecrets") or []:
        refs.secrets.add(_name(ref))
    refs.service_account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")
    for names in (refs.secrets, refs.configmaps, refs.pvcs):
        names.discard("")
    return refs
