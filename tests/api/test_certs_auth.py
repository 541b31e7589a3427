"""Certificates, tokens and kubeconfigs: created once per data dir, reused after."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import yaml
from cryptography import x509

from podns.api.handlers import authorization
from podns.api.server import authentication, certs
from podns.api.server.kubeconfig import write_kubeconfigs


def test_certificates_are_created_once_and_cover_loopback_and_host(tmp_path: Path) -> None:
    """The CA and serving cert are reused; the cert's SANs cover loopback and the host name
    and chain to the CA."""
    first = certs.ensure_certs(tmp_path, "127.0.0.1")
    ca_pem, cert_pem = first.ca_cert.read_bytes(), first.cert.read_bytes()
    again = certs.ensure_certs(tmp_path, "127.0.0.1")
    assert again.ca_cert.read_bytes() == ca_pem and again.cert.read_bytes() == cert_pem
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= set(
        san.get_values_for_type(x509.IPAddress))
    assert {"localhost", socket.gethostname()} <= set(san.get_values_for_type(x509.DNSName))
    ctx = ssl.create_default_context(cafile=str(first.ca_cert))
    assert ctx.cert_store_stats()["x509_ca"] == 1
    assert (first.ca_key.stat().st_mode & 0o777) == 0o600


def test_new_listen_address_reissues_serving_cert_with_same_ca(tmp_path: Path) -> None:
    """Listening on another address re-issues only the serving certificate."""
    first = certs.ensure_certs(tmp_path, "127.0.0.1")
    ca_pem = first.ca_cert.read_bytes()
    certs.ensure_certs(tmp_path, "127.0.0.5")
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.5") in san.get_values_for_type(x509.IPAddress)
    assert first.ca_cert.read_bytes() == ca_pem


def test_tokens_are_stable_and_roles_distinct(tmp_path: Path) -> None:
    """Tokens persist in the data dir (0600); admin is in system:masters, read-only is not."""
    tokens = authentication.load_or_create_tokens(tmp_path)
    assert authentication.load_or_create_tokens(tmp_path) == tokens
    assert tokens.admin != tokens.readonly
    assert ((tmp_path / "tokens.json").stat().st_mode & 0o777) == 0o600
    assert tokens.user_for(tokens.admin) == authorization.ADMIN
    assert tokens.user_for(tokens.readonly) == authorization.READONLY
    assert authorization.MASTERS_GROUP in authorization.ADMIN.groups
    assert tokens.user_for("nope") is None
    assert authentication.bearer("Bearer abc") == "abc" and authentication.bearer("Basic abc") is None


def test_kubeconfigs_embed_server_ca_and_tokens(tmp_path: Path) -> None:
    """Both kubeconfigs name the server, embed the CA and carry their token."""
    paths = certs.ensure_certs(tmp_path, "127.0.0.1")
    admin, readonly = write_kubeconfigs(tmp_path, "https://127.0.0.1:6443", paths.ca_cert,
                                        "tok-a", "tok-r")
    for path, token in ((admin, "tok-a"), (readonly, "tok-r")):
        doc = yaml.safe_load(path.read_text())
        cluster = doc["clusters"][0]["cluster"]
        assert cluster["server"] == "https://127.0.0.1:6443"
        assert cluster["certificate-authority-data"]
        assert doc["users"][0]["user"]["token"] == token
        assert doc["current-context"] == doc["contexts"][0]["name"]
