"""The etcd store over TLS with client certificates (kube-apiserver's --etcd-cafile,
--etcd-certfile, --etcd-keyfile), against a real etcd started here with `--client-cert-auth`;
the CA, server and client certificates are made in the test with `cryptography`."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podns.store import EtcdTLS, Unavailable, open_store
from tests._support import free_port
from tests.e2e._distributed import api
from tests.e2e.conftest import Podns
from tests.etcd_cluster import etcd_available

pytestmark = [pytest.mark.etcd, pytest.mark.timeout(60),
              pytest.mark.skipif(not etcd_available(), reason="etcd binary not installed (etcd-server)")]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def _issue(out: Path, cn: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           usage: ExtendedKeyUsageOID | None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(ca[0].subject if ca else _name(cn)).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1)))
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        # etcd's JSON gateway dials etcd's own gRPC port with the server certificate as its
        # client certificate: under --client-cert-auth that one needs clientAuth too (etcd's docs)
        usages = [usage]
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)  # type: ignore[arg-type]
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    cert = builder.sign(ca[1] if ca else key, hashes.SHA256())
    _write(out, cert, key)
    return cert, key


@dataclass
class TLSEtcd:
    url: str
    pki: Path


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSEtcd]:
    """One etcd serving clients over TLS only, requiring a client certificate of the test CA."""
    base = tmp_path_factory.mktemp("etcd-tls")
    ca = _issue(base / "ca", "etcd-ca", None, None)
    _issue(base / "server", "etcd", ca, ExtendedKeyUsageOID.SERVER_AUTH)
    _issue(base / "client", "kube-apiserver-etcd-client", ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    _issue(base / "stranger", "stranger", _issue(base / "other-ca", "other", None, None),
           ExtendedKeyUsageOID.CLIENT_AUTH)
    port, peer = free_port(), free_port()
    url = f"https://127.0.0.1:{port}"
    log = (base / "etcd.log").open("ab")
    proc = subprocess.Popen(
        ["etcd", "--name", "tls", "--data-dir", str(base / "data"), "--listen-client-urls", url,
         "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
         "--initial-cluster", f"tls=http://127.0.0.1:{peer}",
         "--cert-file", str(base / "server.crt"), "--key-file", str(base / "server.key"),
         "--client-cert-auth", "--trusted-ca-file", str(base / "ca.crt"),
         "--logger", "zap", "--log-level", "error"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    log.close()
    deadline = time.monotonic() + 30
    while True:  # listening (TLS is the store's business), or exited: say why
        if proc.poll() is not None:
            pytest.fail(f"etcd exited: {(base / 'etcd.log').read_text(errors='replace')[-1500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("etcd is not listening after 30 s")
        time.sleep(0.05)
    try:
        yield TLSEtcd(f"etcd://127.0.0.1:{port}", base)
    finally:
        proc.kill()
        proc.wait(10)
        shutil.rmtree(base / "data", ignore_errors=True)


def _tls(pki: Path, client: str = "client") -> EtcdTLS:
    return EtcdTLS(cafile=pki / "ca.crt", certfile=pki / f"{client}.crt", keyfile=pki / f"{client}.key")


async def test_store_works_over_tls_with_a_client_certificate(tls_etcd: TLSEtcd) -> None:
    """given the CA, a client certificate and its key, the store creates, reads and watches over
    TLS (the server's certificate verified against the CA)."""
    store = open_store(tls_etcd.url, etcd_tls=_tls(tls_etcd.pki))
    try:
        deadline = time.monotonic() + 20
        while True:  # etcd is starting
            try:
                created = await store.create("/tls/a", {"kind": "ConfigMap", "data": {"k": "v"}})
                break
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
        assert (await store.get("/tls/a"))["data"] == {"k": "v"}
        watch = store.watch("/tls/", int(created["metadata"]["resourceVersion"]))
        await store.update("/tls/a", {"kind": "ConfigMap", "data": {"k": "w"}})
        event = await anext(watch)
        assert event.object["data"] == {"k": "w"}
        await watch.aclose()
    finally:
        await store.close()


@pytest.mark.parametrize("client", ["none", "stranger"])
async def test_etcd_refuses_a_client_without_a_certificate_of_its_ca(tls_etcd: TLSEtcd, client: str) -> None:
    """given no client certificate, or one from another CA, etcd refuses: Unavailable, no hang."""
    tls = EtcdTLS(cafile=tls_etcd.pki / "ca.crt") if client == "none" else _tls(tls_etcd.pki, client)
    store = open_store(tls_etcd.url, etcd_tls=tls)
    try:
        with pytest.raises(Unavailable):
            await store.get("/tls/a")
    finally:
        await store.close()


def test_unreadable_tls_files_are_a_value_error(tmp_path: Path) -> None:
    """given a key file that does not exist, opening the store says which file (ValueError)."""
    (tmp_path / "c.crt").write_text("")
    with pytest.raises(ValueError, match=r"missing\.key"):
        open_store("etcd://127.0.0.1:1", etcd_tls=EtcdTLS(certfile=tmp_path / "c.crt",
                                                           keyfile=tmp_path / "missing.key"))


def test_apiserver_over_tls_etcd(tls_etcd: TLSEtcd, tmp_path: Path) -> None:
    """given `podns apiserver --store etcd://... --etcd-cafile --etcd-certfile --etcd-keyfile`,
    the server starts over the TLS-only etcd and serves a ConfigMap written through it."""
    pki = tls_etcd.pki
    server = Podns(tmp_path, "--store", tls_etcd.url, "--etcd-cafile", str(pki / "ca.crt"),
                   "--etcd-certfile", str(pki / "client.crt"), "--etcd-keyfile", str(pki / "client.key"),
                   command="apiserver").start()
    try:
        status, _ = api(server, "POST", "/api/v1/namespaces/default/configmaps",
                        {"metadata": {"name": "over-tls"}, "data": {"k": "v"}})
        assert status == 201
        status, got = api(server, "GET", "/api/v1/namespaces/default/configmaps/over-tls")
        assert status == 200 and got["data"] == {"k": "v"}
    finally:
        server.stop()
