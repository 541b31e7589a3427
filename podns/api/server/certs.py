"""The cluster CA and the certificates it signs, generated on first start.

Files in the data dir: `ca.crt`/`ca.key` (self-signed CA, 10 years), `apiserver.crt`/
`apiserver.key` (signed by the CA, SANs 127.0.0.1, ::1, localhost, the host name, the
listen address, and the `kubernetes` Service's cluster IP and names) and
`apiserver-kubelet-client.crt`/`.key`, the API server's client identity towards node agents
(CN `podns.objects.nodeapi.APISERVER_CLIENT_CN`, as kubeadm's `apiserver-kubelet-client.crt`).
Existing files are reused so kubeconfigs stay valid across restarts; the serving certificate is
re-issued (by the same CA) when the listen address or the cluster IP is not among its SANs.

`sa.key` is the ServiceAccount token signing key (EC P-256, kubeadm's file name), created with
the CA and shared the same way by the API servers of a cluster (`podns apiserver --pki-from`):
a token one server issued is accepted by every other.

`issue_node_serving` signs a node agent's serving certificate with a data dir's CA: `podns up`
does it for its own node, `podns node --pki-from DIR` for a node joining a cluster. The node
keeps only its own key and certificate, never the CA key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podns.api.server.authentication import write_private
from podns.objects.nodeapi import APISERVER_CLIENT_CN

CA_DAYS = 3650
SERVING_DAYS = 3650
#: components' client certificates: a year, re-issued at every start of the API server that
#: writes their kubeconfig (kubeadm's certificates last a year too)
CLIENT_DAYS = 365


@dataclass(frozen=True, slots=True)
class CertPaths:
    """Where the PEM files of one data dir live."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, data_dir: Path) -> CertPaths:
        return cls(data_dir / "ca.crt", data_dir / "ca.key",
                   data_dir / "apiserver.crt", data_dir / "apiserver.key")

    @classmethod
    def kubelet_client(cls, data_dir: Path) -> CertPaths:
        """The API server's client certificate towards node agents, in `data_dir`."""
        return cls(data_dir / "ca.crt", data_dir / "ca.key",
                   data_dir / "apiserver-kubelet-client.crt", data_dir / "apiserver-kubelet-client.key")


#: the key types a CA key may have (podns creates EC keys; an RSA CA, as kubeadm's, works too)
_ISSUER_KEYS = (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey,
                ed448.Ed448PrivateKey, dsa.DSAPrivateKey)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _create_ca(paths: CertPaths) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "podns-ca")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(paths.ca_key, _key_pem(key))
    write_private(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM).decode())


#: the `kubernetes` Service's names, which in-cluster clients may dial (kube-apiserver's SANs)
SERVICE_NAMES = ("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")


def _sans(host: str, extra_ips: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) a serving certificate covers: loopback, the host name, the
    listen host and `extra_ips` (the API server's: the `kubernetes` Service's cluster IP)."""
    dns = {"localhost", socket.gethostname()}
    ips = {"127.0.0.1", "::1", *extra_ips}
    try:
        ipaddress.ip_address(host)
        if host not in ("0.0.0.0", "::"):
            ips.add(host)
    except ValueError:
        if host:
            dns.add(host)
    return sorted(dns), sorted(ips)


def _covers(cert_path: Path, host: str, extra_ips: tuple[str, ...] = (),
            extra_dns: tuple[str, ...] = ()) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns, ips = _sans(host, extra_ips)
    have_ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    have_dns = set(san.get_values_for_type(x509.DNSName))
    return set(ips) <= have_ips and {*dns, *extra_dns} <= have_dns


def _sign(ca: CertPaths, *, cn: str, orgs: tuple[str, ...] = (), host: str | None = None,
          extra_dns: tuple[str, ...] = (), extra_ips: tuple[str, ...] = (), server: bool = True,
          client: bool = False,
          days: int = SERVING_DAYS) -> tuple[bytes, bytes]:
    """A new key pair signed by the CA of `ca`: (certificate PEM, key PEM).

    `host` (None: no SANs) and `extra_dns` give the SANs of a serving certificate; `server`
    and `client` its extended key usages."""
    ca_key = serialization.load_pem_private_key(ca.ca_key.read_bytes(), password=None)
    if not isinstance(ca_key, _ISSUER_KEYS):  # e.g. an X25519 or DH key cannot sign
        raise ValueError(f"{ca.ca_key}: the cluster CA key cannot sign certificates")
    ca_cert = x509.load_pem_x509_certificate(ca.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    subject.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if host is not None:
        dns, ips = _sans(host, extra_ips)
        alt: list[x509.GeneralName] = [x509.DNSName(d) for d in sorted({*dns, *extra_dns})]
        alt += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key).encode()


def _issue(paths: CertPaths, **kwargs: Any) -> None:
    """`_sign` with the CA of `paths`, written to `paths.cert`/`paths.key` (0600)."""
    cert, key = _sign(paths, **kwargs)
    write_private(paths.key, key)
    write_private(paths.cert, cert)


def ensure_certs(data_dir: Path, host: str, extra_ips: tuple[str, ...] = ()) -> CertPaths:
    """Create the CA and serving certificate when missing (or not covering `host` and
    `extra_ips`, the `kubernetes` Service's cluster IP)."""
    paths = CertPaths.in_dir(data_dir)
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        _create_ca(paths)
        paths.cert.unlink(missing_ok=True)
    if (not (paths.cert.exists() and paths.key.exists())
            or not _covers(paths.cert, host, extra_ips, SERVICE_NAMES)):
        _issue(paths, cn="podns-apiserver", host=host, extra_dns=SERVICE_NAMES, extra_ips=extra_ips)
    client = CertPaths.kubelet_client(data_dir)
    if not (client.cert.exists() and client.key.exists()):
        _issue(client, cn=APISERVER_CLIENT_CN, orgs=("system:masters",), server=False, client=True)
    return paths


SA_KEY = "sa.key"


def ensure_service_account_key(data_dir: Path) -> bytes:
    """The PEM of the ServiceAccount token signing key of `data_dir`, created when missing."""
    path = data_dir / SA_KEY
    if not path.exists():
        write_private(path, _key_pem(ec.generate_private_key(ec.SECP256R1())))
    return path.read_bytes()


def ensure_ca(data_dir: Path) -> CertPaths:
    """The CA and the API server's kubelet-client certificate of `data_dir`, created when
    missing (an API server serving plain HTTP still reaches node agents over TLS)."""
    paths = CertPaths.in_dir(data_dir)
    if not (paths.ca_cert.exists() and paths.ca_key.exists()):
        _create_ca(paths)
        paths.cert.unlink(missing_ok=True)
    client = CertPaths.kubelet_client(data_dir)
    if not (client.cert.exists() and client.key.exists()):
        _issue(client, cn=APISERVER_CLIENT_CN, orgs=("system:masters",), server=False, client=True)
    return paths


def issue_node_serving(ca_dir: Path, out_dir: Path, *, node_name: str, host: str) -> tuple[Path, Path]:
    """A serving certificate for the node agent `node_name` listening on `host`, signed by the
    CA in `ca_dir` and written to `out_dir` (`node.crt`, `node.key`); reused while it is signed
    by that CA and covers `host`. Returns (certificate, key) paths."""
    ca = CertPaths.in_dir(ca_dir)
    paths = CertPaths(ca.ca_cert, ca.ca_key, out_dir / "node.crt", out_dir / "node.key")
    if not (paths.cert.exists() and paths.key.exists() and _covers(paths.cert, host)
            and _signed_by(paths.cert, ca.ca_cert)):
        out_dir.mkdir(parents=True, exist_ok=True)
        _issue(paths, cn=f"system:node:{node_name}", orgs=("system:nodes",), host=host,
               extra_dns=(node_name,))
    return paths.cert, paths.key


def _signed_by(cert_path: Path, ca_path: Path) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, or a CA of another key type
        return False
    return True


def kubelet_client_ssl_context(data_dir: Path) -> ssl.SSLContext:
    """TLS settings of the API server's connections to node agents: the node's certificate must
    be signed by the cluster CA and name the address dialled (kube-apiserver's
    --kubelet-certificate-authority); the API server presents its kubelet-client identity."""
    paths = CertPaths.kubelet_client(data_dir)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(paths.ca_cert))
    ctx.load_cert_chain(paths.cert, paths.key)
    return ctx


def server_ssl_context(paths: CertPaths) -> ssl.SSLContext:
    """TLS settings for serving the API: a client may present a certificate signed by the
    cluster CA (kube-apiserver's --client-ca-file), which then names its user (CN) and groups
    (O); one that does not chain to the CA fails the handshake, none at all is fine (tokens)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(paths.cert, paths.key)
    ctx.load_verify_locations(cafile=str(paths.ca_cert))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def issue_client(ca_dir: Path, *, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A client certificate for `user` in `groups` (CN and O, as Kubernetes reads them), signed
    by the CA in `ca_dir`: (certificate PEM, key PEM), kept in memory (they go into a
    kubeconfig, written 0600). Raises OSError when the CA files are missing."""
    return _sign(CertPaths.in_dir(ca_dir), cn=user, orgs=groups, server=False, client=True,
                 days=CLIENT_DAYS)


def peer_identity(peercert: dict[str, Any] | None) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) of a verified client certificate as `ssl.SSLSocket.getpeercert()` gives
    it: the CN is the user, each O a group (Kubernetes' x509 authenticator); None without a
    certificate or a CN."""
    if not peercert:
        return None
    cn = ""
    groups: list[str] = []
    for rdn in peercert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                cn = str(value)
            elif key == "organizationName":
                groups.append(str(value))
    return (cn, tuple(groups)) if cn else None
