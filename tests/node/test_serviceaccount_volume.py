"""The projected ServiceAccount volume on the node: token (bound to the pod, replaced at 80 %
of its lifetime), ca.crt and namespace files, the `PODNS_SERVICE_ACCOUNT_DIR` and
`KUBERNETES_SERVICE_*` variables (fake API side, real processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from podns.api.handlers.serviceaccountadmission import token_volume
from podns.node.podworker import token_refresh_at
from podns.objects.wellknown import SERVICE_ACCOUNT_MOUNT_PATH
from tests.node.conftest import FakeAgent, make_pod

pytestmark = pytest.mark.timeout(30)


def test_refresh_at_80_percent_or_a_day() -> None:
    """given a token's lifetime, it is replaced after 80 % of it, and after 24 h at the latest."""
    assert token_refresh_at(1000.0, 1000.0 + 3607) == pytest.approx(1000.0 + 0.8 * 3607)
    assert token_refresh_at(0.0, 365 * 86400.0) == 86400.0


async def test_projected_token_volume_and_rotation(agent: FakeAgent, tmp_path: Path) -> None:
    """given a pod with the admission's projected volume (token lifetime 2 s), its container sees
    token, ca.crt and namespace through PODNS_SERVICE_ACCOUNT_DIR and the API address in
    KUBERNETES_SERVICE_HOST/PORT; the token file is replaced with a new token before it expires."""
    out = tmp_path / "seen"
    vol = token_volume("kube-api-access-abcde")
    vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] = 2
    agent.sources = ({"kube-root-ca.crt": {"data": {"ca.crt": "CA PEM"}}}, {})
    script = ('d=$PODNS_SERVICE_ACCOUNT_DIR; { cat $d/token; echo; cat $d/ca.crt; echo; cat $d/namespace; '
              f'echo; echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; }} > {out}; sleep 30')
    pod = make_pod("sa", [{"name": "c", "command": ["sh", "-c", script], "volumeMounts": [
        {"name": vol["name"], "readOnly": True, "mountPath": SERVICE_ACCOUNT_MOUNT_PATH}]}], volumes=[vol])
    w = agent.start(pod)
    for _ in range(250):
        if out.exists() and out.read_text().count("\n") >= 4:
            break
        await asyncio.sleep(0.02)
    assert out.read_text().split("\n")[:4] == ["token-1", "CA PEM", "default", "127.0.0.1:6443"]
    assert agent.token_requests == [("", 2)]
    token_file = w.volumes[vol["name"]] / "token"
    assert oct(token_file.stat().st_mode & 0o777) == "0o644"
    for _ in range(200):  # due after 1.6 s
        if token_file.read_text() == "token-2":
            break
        await asyncio.sleep(0.05)
    assert token_file.read_text() == "token-2"
