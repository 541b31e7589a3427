"""TLS from the kubeconfig: trusting the cluster CA, bearer tokens and client certificates."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podns.kube import errors
from podns.kube.client import Client

pytestmark = pytest.mark.timeout(20)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey | None, *, server: bool = False
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=1))
               .not_valid_after(now + dt.timedelta(hours=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    elif server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                        False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                                        False)
    return builder.sign(issuer_key or key, hashes.SHA256())


class PKI:
    def __init__(self, tmp: Path) -> None:
        self.ca_key = _key()
        self.ca = _cert("test-ca", self.ca_key, None, None)
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM)
        skey = _key()
        scert = _cert("apiserver", skey, self.ca, self.ca_key, server=True)
        self.server_cert = tmp / "server.crt"
        self.server_key = tmp / "server.key"
        self.server_cert.write_bytes(scert.public_bytes(serialization.Encoding.PEM))
        self.server_key.write_bytes(_pem_key(skey))
        ckey = _key()
        ccert = _cert("admin", ckey, self.ca, self.ca_key)
        self.client_cert = ccert.public_bytes(serialization.Encoding.PEM)
        self.client_key = _pem_key(ckey)
        self.ca_file = tmp / "ca.crt"
        self.ca_file.write_bytes(self.ca_pem)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[PKI, str, list[dict]]]:
    """An HTTPS server that records who called: the bearer token and the client cert CN."""
    pki = PKI(tmp_path)
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        cn = None
        if peer:
            cn = dict(x[0] for x in peer["subject"]).get("commonName")
        seen.append({"auth": request.headers.get("Authorization"), "cn": cn})
        return web.json_response({"kind": "Namespace", "metadata": {"name": "default"}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_file))
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    yield pki, f"https://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


def _kubeconfig(tmp: Path, server: str, cluster: dict, user: dict) -> Path:
    doc = {"current-context": "c",
           "clusters": [{"name": "k", "cluster": {"server": server, **cluster}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
    path = tmp / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_ca_file_and_token(tls_server: tuple[PKI, str, list[dict]], tmp_path: Path) -> None:
    """The kubeconfig CA verifies the server; the token is sent as a Bearer header."""
    _pki, url, seen = tls_server
    path = _kubeconfig(tmp_path, url, {"certificate-authority": "ca.crt"}, {"token": "abc"})
    async with Client.from_kubeconfig(path) as client:
        assert (await client.request("GET", "/api/v1/namespaces/default"))["kind"] == "Namespace"
    assert seen == [{"auth": "Bearer abc", "cn": None}]


async def test_client_certificate_data(tls_server: tuple[PKI, str, list[dict]],
                                       tmp_path: Path) -> None:
    """client-certificate-data / client-key-data authenticate over TLS."""
    pki, url, seen = tls_server
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    path = _kubeconfig(tmp_path, url, {"certificate-authority-data": b64(pki.ca_pem)},
                       {"client-certificate-data": b64(pki.client_cert),
                        "client-key-data": b64(pki.client_key)})
    async with Client.from_kubeconfig(path) as client:
        await client.request("GET", "/api/v1/namespaces/default")
    assert seen == [{"auth": None, "cn": "admin"}]


async def test_untrusted_server_fails_unless_insecure(tls_server: tuple[PKI, str, list[dict]],
                                                      tmp_path: Path) -> None:
    """Without the CA the handshake fails (TransportError); insecure-skip-tls-verify works."""
    _, url, seen = tls_server
    async with Client.from_kubeconfig(_kubeconfig(tmp_path, url, {}, {})) as client:
        with pytest.raises(errors.TransportError):
            await client.request("GET", "/api/v1/namespaces/default")
    assert seen == []
    path = _kubeconfig(tmp_path, url, {"insecure-skip-tls-verify": True}, {})
    async with Client.from_kubeconfig(path) as client:
        await client.request("GET", "/api/v1/namespaces/default")
    assert len(seen) == 1
