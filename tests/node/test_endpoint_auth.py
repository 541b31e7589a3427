"""The node endpoint answers only the API server: TLS with a certificate from the cluster CA,
and a client certificate naming the API server's kubelet-client identity (issue 18, item 4)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from podns.api.server import certs
from podns.node.server import make_app
from tests._support import serve_app
from tests.node.conftest import node_pki

pytestmark = pytest.mark.timeout(30)

SECRET_POD = {"metadata": {"name": "db-0", "namespace": "default"},
              "spec": {"containers": [{"name": "db", "env": [{"name": "PASSWORD", "value": "hunter2"}]}]}}


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[tuple[str, ssl.SSLContext, Path]]:
    """A node endpoint over TLS (one pod with a literal secret in its env): (url, the API
    server's client TLS, the CA dir)."""
    serving, client = node_pki(tmp_path)
    runner, url = await serve_app(make_app(lambda ns, pod, c: (None, None), lambda: [SECRET_POD]), serving)
    yield url, client, tmp_path
    await runner.cleanup()


async def _get(url: str, tls: ssl.SSLContext | bool) -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(url, ssl=tls) as r:
        return r.status, await r.text()


def _ca_only(ca_dir: Path) -> ssl.SSLContext:
    """A client that trusts the cluster CA but presents no certificate (a token holder, a user)."""
    return ssl.create_default_context(cafile=str(ca_dir / "ca.crt"))


@pytest.mark.parametrize("path", ["/pods", "/containerLogs/default/db-0/db"])
async def test_unauthenticated_request_is_refused(endpoint: tuple[str, ssl.SSLContext, Path],
                                                  path: str) -> None:
    """given the node endpoint, when a client without a client certificate asks for /pods or a
    pod's logs, then it gets 401 and no pod data; only the API server's identity gets through."""
    url, api_client, ca_dir = endpoint
    code, body = await _get(url + path, _ca_only(ca_dir))
    assert code == 401 and "hunter2" not in body and '"reason":"Unauthorized"' in body
    code, body = await _get(url + "/pods", api_client)
    assert code == 200 and "hunter2" in body


async def test_other_identities_and_plain_http_are_refused(endpoint: tuple[str, ssl.SSLContext, Path],
                                                            tmp_path: Path) -> None:
    """given the node endpoint, a certificate of the cluster CA with another name is 403; a
    certificate of another CA fails the handshake; plain HTTP gets no answer; /healthz is open."""
    url, _, ca_dir = endpoint
    other = certs.CertPaths(ca_dir / "ca.crt", ca_dir / "ca.key", tmp_path / "u.crt", tmp_path / "u.key")
    certs._issue(other, cn="system:node:n2", server=False, client=True)
    ctx = _ca_only(ca_dir)
    ctx.load_cert_chain(other.cert, other.key)
    code, body = await _get(url + "/pods", ctx)
    assert code == 403 and "hunter2" not in body and "only the API server" in body

    foreign_dir = tmp_path / "foreign"
    certs.ensure_ca(foreign_dir)
    foreign = _ca_only(ca_dir)
    foreign.load_cert_chain(foreign_dir / "apiserver-kubelet-client.crt",
                            foreign_dir / "apiserver-kubelet-client.key")
    with pytest.raises(aiohttp.ClientError):
        await _get(url + "/pods", foreign)
    with pytest.raises(aiohttp.ClientError):
        await _get(url.replace("https://", "http://") + "/pods", False)
    assert (await _get(url + "/healthz", _ca_only(ca_dir)))[0] == 200


async def test_api_server_refuses_a_node_certificate_not_from_the_cluster_ca(tmp_path: Path) -> None:
    """given a node endpoint serving a certificate of another CA, the API server's client side
    (certs.kubelet_client_ssl_context) refuses to talk to it."""
    serving, _ = node_pki(tmp_path / "other")
    certs.ensure_ca(tmp_path / "cluster")
    runner, url = await serve_app(make_app(lambda ns, pod, c: (None, None), lambda: [SECRET_POD]), serving)
    try:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await _get(url + "/pods", certs.kubelet_client_ssl_context(tmp_path / "cluster"))
    finally:
        await runner.cleanup()
