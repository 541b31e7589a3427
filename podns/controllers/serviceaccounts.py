"""The `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap of every namespace.

Two small controllers of kube-controller-manager, keyed by namespace name:

- `ServiceAccountsController` (Kubernetes' `serviceaccount-controller`,
  `pkg/controller/serviceaccount/serviceaccounts_controller.go`): every active namespace has a
  ServiceAccount `default`; one deleted is made again.
- `RootCACertPublisher` (Kubernetes' `root-ca-cert-publisher`, `pkg/controller/certificates/
  rootcacertpublisher`): every active namespace has a ConfigMap `kube-root-ca.crt` whose `ca.crt`
  is the cluster CA (here: the CA this controller manager trusts for the API server), which the
  projected ServiceAccount volume of every pod mounts as `ca.crt`; a changed or deleted one is
  put back.

A namespace being deleted gets nothing (the API server would refuse the create anyway).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from podns.objects import join_key, meta_of, name_of, namespace_of

Obj = dict[str, Any]

DEFAULT_SERVICE_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
#: the annotation Kubernetes puts on kube-root-ca.crt (kubernetes.io/description)
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


def _active(namespace: Obj | None) -> bool:
    return namespace is not None and not meta_of(namespace).get("deletionTimestamp") and (
        (namespace.get("status") or {}).get("phase") != "Terminating")


class ServiceAccountsController(workerloop.Controller):
    """Makes the `default` ServiceAccount in every active namespace."""

    name = "serviceaccount-controller"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.namespaces = informers.get(NAMESPACES)
        self.accounts = informers.get(SERVICEACCOUNTS)
        self.namespaces.add_handler(on_add=self._on_namespace,
                                    on_update=lambda _o, n: self._on_namespace(n))
        self.accounts.add_handler(on_delete=self._on_account_delete)

    def _on_namespace(self, ns: Obj) -> None:
        self.enqueue(name_of(ns))

    def _on_account_delete(self, sa: Obj) -> None:
        if name_of(sa) == DEFAULT_SERVICE_ACCOUNT:
            self.enqueue(namespace_of(sa) or "")

    async def sync(self, key: Hashable) -> None:
        ns = str(key)
        if not _active(self.namespaces.get(ns)):
            return  # gone or terminating: nothing to make
        if self.accounts.get(join_key(ns, DEFAULT_SERVICE_ACCOUNT)) is not None:
            return
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": DEFAULT_SERVICE_ACCOUNT, "namespace": ns}}
        try:
            await self.client.create(SERVICEACCOUNTS, body, ns)
        except errors.AlreadyExists:
            return  # the cache is behind (or the API server's admission made it)
        except errors.Forbidden:
            return  # the namespace started terminating: non-transient


class RootCACertPublisher(workerloop.Controller):
    """Publishes the cluster CA as ConfigMap `kube-root-ca.crt` in every active namespace."""

    name = "root-ca-cert-publisher"
    workers = 1

    def __init__(self, client: Client, informers: SharedInformers, ca_pem: str) -> None:
        super().__init__()
        self.client = client
        self.ca_pem = ca_pem
        self.namespaces = informers.get(NAMESPACES)
        self.configmaps = informers.get(CONFIGMAPS)
        self.namespaces.add_handler(on_add=self._on_namespace,
                                    on_update=lambda _o, n: self._on_namespace(n))
        self.configmaps.add_handler(on_update=lambda _o, n: self._on_configmap(n),
                                    on_delete=self._on_configmap)

    def _on_namespace(self, ns: Obj) -> None:
        self.enqueue(name_of(ns))

    def _on_configmap(self, cm: Obj) -> None:
        if name_of(cm) == ROOT_CA_CONFIGMAP:
            self.enqueue(namespace_of(cm) or "")

    def desired(self, ns: str) -> Obj:
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": ns,
                             "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": {"ca.crt": self.ca_pem}}

    async def sync(self, key: Hashable) -> None:
        ns = str(key)
        if not self.ca_pem or not _active(self.namespaces.get(ns)):
            return
        current = self.configmaps.get(join_key(ns, ROOT_CA_CONFIGMAP))
        try:
            if current is None:
                await self.client.create(CONFIGMAPS, self.desired(ns), ns)
            elif (current.get("data") or {}).get("ca.crt") != self.ca_pem:
                await self.client.patch(CONFIGMAPS, ROOT_CA_CONFIGMAP,
                                        {"data": {"ca.crt": self.ca_pem}}, ns)
        except errors.AlreadyExists:
            raise workerloop.StaleCache(f"{ns}/{ROOT_CA_CONFIGMAP}") from None
        except (errors.Forbidden, errors.NotFound):
            return  # terminating or gone namespace: non-transient
