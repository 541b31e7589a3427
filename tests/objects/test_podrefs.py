"""The objects a pod refers to by name (what the Node authorizer lets its node read)."""

from __future__ import annotations

from podns.objects.podrefs import pod_references
from tests.api.test_node_authorizer import USES


def test_pod_references_cover_volumes_env_pull_secrets_and_account() -> None:
    """given a pod using secrets/configMaps through volumes, projected sources, envFrom and
    imagePullSecrets, a PVC and a ServiceAccount, every one is a reference."""
    refs = pod_references(USES)
    assert refs.secrets == {"vol-secret", "pull", "init-env"}
    assert refs.configmaps == {"proj-cm"}
    assert refs.pvcs == {"data"} and refs.service_account == "app"
