"""The serviceaccount controller and the root CA publisher: every active namespace gets the
`default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, made again when deleted or
changed; a terminating namespace gets nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from podns.controllers.serviceaccounts import RootCACertPublisher, ServiceAccountsController
from podns.kube.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from podns.kube.testing import FakeClient

from ._harness import eventually, running

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def names(fake: FakeClient, resource: Any, ns: str) -> list[str]:
    return [o["metadata"]["name"] for o in fake.objects(resource, ns)]


async def test_default_account_and_root_ca_in_every_active_namespace() -> None:
    """given two namespaces (one terminating), then the active one gets `default` and
    `kube-root-ca.crt` with the CA; a deleted account and a changed ConfigMap are put back."""
    fake = FakeClient()
    fake.seed(NAMESPACES, {"metadata": {"name": "a"}, "status": {"phase": "Active"}})
    fake.seed(NAMESPACES, {"metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                           "status": {"phase": "Terminating"}})
    async with running(fake, ServiceAccountsController,
                       lambda c, i: RootCACertPublisher(c, i, CA)):
        await eventually(lambda: names(fake, SERVICEACCOUNTS, "a") == ["default"]
                         and names(fake, CONFIGMAPS, "a") == ["kube-root-ca.crt"])
        cm = fake.objects(CONFIGMAPS, "a")[0]
        assert cm["data"] == {"ca.crt": CA}
        assert "kubernetes.io/description" in cm["metadata"]["annotations"]
        await fake.delete(SERVICEACCOUNTS, "default", "a")
        await fake.patch(CONFIGMAPS, "kube-root-ca.crt", {"data": {"ca.crt": "other"}}, "a")
        await eventually(lambda: names(fake, SERVICEACCOUNTS, "a") == ["default"]
                         and fake.objects(CONFIGMAPS, "a")[0]["data"]["ca.crt"] == CA)
        await asyncio.sleep(0.1)
    assert names(fake, SERVICEACCOUNTS, "gone") == [] and names(fake, CONFIGMAPS, "gone") == []
