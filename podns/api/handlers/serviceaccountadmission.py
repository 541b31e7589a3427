"""The ServiceAccount admission plugin: what kube-apiserver's `plugin/pkg/admission/serviceaccount`
does to every new Pod.

- `spec.serviceAccountName` defaults to `default` (and the deprecated `spec.serviceAccount`
  follows it);
- the account must exist: a pod naming a missing one is refused with Kubernetes' 403
  (`pods "x" is forbidden: error looking up service account ns/app: serviceaccount "app" not
  found`). The `default` account is made by the serviceaccount controller as each namespace
  appears; where it is not there yet (API server started without controllers, or a pod created
  in the same instant as its namespace) this plugin makes it, where Kubernetes retries its lookup
  for a second and then refuses;
- unless `automountServiceAccountToken: false` (on the pod, else on the account), a projected
  volume `kube-api-access-<5 random>` (token of the account bound to the pod, rotated by the node
  agent; `ca.crt` from ConfigMap `kube-root-ca.crt`; `namespace` from the downward API) is added
  and mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every container and
  init container that does not already mount something there.
"""

from __future__ import annotations

import copy
from typing import Any

from podns.api import statuserror
from podns.api.handlers.rest import Rest, WriteOptions
from podns.api.resources.base import ResourceType
from podns.objects.names import generate_name
from podns.objects.wellknown import SERVICE_ACCOUNT_MOUNT_PATH

Obj = dict[str, Any]

DEFAULT_SERVICE_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
#: the kubelet-requested lifetime Kubernetes' plugin writes (1 h plus 7 s, so the API server can
#: tell a default projected token from one a user asked for)
TOKEN_EXPIRATION = 3607
#: 0644, as the plugin sets `defaultMode`
DEFAULT_MODE = 420


def token_volume(name: str) -> Obj:
    """The projected volume Kubernetes' admission adds (same sources, order and fields)."""
    return {"name": name, "projected": {"defaultMode": DEFAULT_MODE, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


class ServiceAccountAdmission:
    """Admits new Pods (see the module docstring); `accounts` is the ServiceAccount kind."""

    def __init__(self, rest: Rest, accounts: ResourceType) -> None:
        self.rest = rest
        self.accounts = accounts

    async def admit(self, pod: Obj) -> None:
        """Default, check and mount the pod's ServiceAccount, in place; ApiError 403 when the
        account does not exist."""
        spec = pod.get("spec")
        if not isinstance(spec, dict):
            return
        md = pod.get("metadata") or {}
        ns = str(md.get("namespace") or "")
        name = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT)
        spec["serviceAccountName"] = spec["serviceAccount"] = name
        sa = await self._account(ns, name)
        if sa is None:
            raise statuserror.ApiError(403, "Forbidden", (
                f'pods "{md.get("name", "")}" is forbidden: error looking up service account '
                f'{ns}/{name}: serviceaccount "{name}" not found'),
                {"name": str(md.get("name", "")), "kind": "pods"})
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken")
        if automount is False:
            return
        volumes = spec.get("volumes")
        if volumes is not None and not isinstance(volumes, list):
            return  # validation refuses it
        volumes = volumes or []
        taken = {v.get("name") for v in volumes if isinstance(v, dict)}
        vol_name = generate_name(VOLUME_PREFIX)
        while vol_name in taken:
            vol_name = generate_name(VOLUME_PREFIX)
        mounted = False
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or []:
                if not isinstance(c, dict):
                    continue
                mounts = c.get("volumeMounts")
                if mounts is not None and not isinstance(mounts, list):
                    continue
                paths = {str(m.get("mountPath", "")).rstrip("/") for m in mounts or []
                         if isinstance(m, dict)}
                if SERVICE_ACCOUNT_MOUNT_PATH in paths:
                    continue
                c["volumeMounts"] = [*(mounts or []), {"name": vol_name, "readOnly": True,
                                                       "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]
                mounted = True
        if mounted:
            spec["volumes"] = [*volumes, token_volume(vol_name)]

    async def _account(self, ns: str, name: str) -> Obj | None:
        try:
            return await self.rest.get(self.accounts, ns, name)
        except statuserror.ApiError as exc:
            if exc.code != 404:
                raise
        if name != DEFAULT_SERVICE_ACCOUNT:
            return None
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": ns}}
        try:
            return await self.rest.create(self.accounts, ns, copy.deepcopy(body), WriteOptions())
        except statuserror.ApiError as exc:
            if exc.code != 409:  # made meanwhile by the controller: read it
                raise
        return await self.rest.get(self.accounts, ns, name)
