"""Client configuration: where the API servers are and how to authenticate, from a kubeconfig
or, inside a pod, from the pod's ServiceAccount (`in_cluster_config`, `load_config`).

`load_kubeconfig` reads the same files kubectl does (the `KUBECONFIG` variable, a
colon-separated list merged first-wins as kubectl merges it, or `~/.kube/config`) and resolves
the current (or a named) context into a `Config`. Relative file paths in a kubeconfig are taken
relative to the file that names them, as kubectl does.

Several API servers: podns runs API server replicas over etcd, and clients fail over between
them. A `Config` therefore carries a list of server URLs, taken (in this order of precedence)
from an explicit `servers=[...]` argument, from the cluster extension named `podns.io/servers`
(`extension: {servers: [url, ...]}`), or from a comma-separated `server:` field; kubectl and the
official clients simply use the first one.

This module does no I/O besides reading the kubeconfig and the files it names.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from podns.kube.errors import ConfigError
from podns.objects.times import parse_time
from podns.objects.wellknown import SERVICE_ACCOUNT_DIR_ENV, SERVICE_ACCOUNT_MOUNT_PATH

#: the cluster extension that lists every API server of a podns cluster
SERVERS_EXTENSION = "podns.io/servers"


@dataclass(slots=True)
class Config:
    """What a client needs to reach and authenticate to the API servers.

    `servers` are base URLs (`https://127.0.0.1:6443`), tried in order on connection failure.
    `ca_data` is PEM bytes of the CA to trust (None: the system store, or plain HTTP).
    `insecure` skips TLS verification. `token` is a bearer token; `client_cert_data` /
    `client_key_data` are PEM bytes of a client certificate. `namespace` is the context's
    default namespace ("default" when unset).
    """

    servers: list[str]
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    username: str | None = None
    password: str | None = None
    namespace: str = "default"
    tls_server_name: str | None = None
    exec_plugin: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _exec_token: str | None = field(default=None, repr=False)
    _exec_expiry: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self.servers:
            raise ConfigError("no API server URL configured")
        self.servers = [s.rstrip("/") for s in self.servers]
        for server in self.servers:
            if not server.startswith(("http://", "https://")):
                raise ConfigError(f"API server URL {server!r} must start with http:// or https://")

    @property
    def server(self) -> str:
        """The first (preferred) API server URL."""
        return self.servers[0]

    def bearer_token(self) -> str | None:
        """The token to send: `token`, else the current content of `token_file` (re-read each
        time so rotated tokens are picked up)."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise ConfigError(f"reading token file {self.token_file}: {exc}") from exc
        if self.exec_plugin:
            return self._token_from_exec()
        return None

    def _token_from_exec(self) -> str | None:
        """Run the kubeconfig's `exec` credential plugin (client.authentication.k8s.io) and
        cache its token until its expirationTimestamp (a minute early)."""
        if self._exec_token and time.time() < self._exec_expiry:
            return self._exec_token
        spec = self.exec_plugin or {}
        argv = [str(spec.get("command") or "")] + [str(a) for a in spec.get("args") or []]
        env = {**os.environ, **{str(e["name"]): str(e["value"]) for e in spec.get("env") or []},
               "KUBERNETES_EXEC_INFO": json.dumps({
                   "apiVersion": spec.get("apiVersion", "client.authentication.k8s.io/v1"),
                   "kind": "ExecCredential", "spec": {"interactive": False}})}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60,
                                  check=True, stdin=subprocess.DEVNULL)
            status = json.loads(done.stdout).get("status") or {}
        except (OSError, subprocess.SubprocessError, ValueError, AttributeError) as exc:
            raise ConfigError(f"exec credential plugin {argv[0]!r} failed: {exc}") from exc
        token = status.get("token")
        if not token:
            raise ConfigError(f"exec credential plugin {argv[0]!r} returned no token")
        expiry = float("inf")
        expires = parse_time(status.get("expirationTimestamp"))
        if expires is not None:
            expiry = expires - 60
        self._exec_token, self._exec_expiry = str(token), expiry
        return self._exec_token

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for https servers (None when every server is plain http)."""
        if not any(s.startswith("https://") for s in self.servers):
            return None
        try:
            if self.ca_data:
                ctx = ssl.create_default_context(cadata=self.ca_data.decode())
            else:
                ctx = ssl.create_default_context()
            if self.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.client_cert_data and self.client_key_data:
                _load_cert_chain(ctx, self.client_cert_data, self.client_key_data)
        except (ssl.SSLError, ValueError, OSError) as exc:
            raise ConfigError(f"building TLS settings: {exc}") from exc
        return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """Load an in-memory client certificate (ssl only loads files: use a private temp file)."""
    with tempfile.TemporaryDirectory(prefix="podns-kube-") as tmp:
        path = Path(tmp) / "client.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert.rstrip(b"\n") + b"\n" + key)
        ctx.load_cert_chain(str(path))


def _default_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"reading kubeconfig {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"parsing kubeconfig {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"kubeconfig {path} is not a mapping")
    base = str(path.resolve().parent)
    # remember where each entry came from so relative file names resolve against it
    for section in ("clusters", "users", "contexts"):
        for entry in data.get(section) or []:
            if isinstance(entry, dict):
                entry["_dir"] = base
    return data


def _merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge several kubeconfigs first-wins by name (kubectl's rule for KUBECONFIG lists)."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    for doc in docs:
        if "current-context" not in merged and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for section in ("clusters", "users", "contexts"):
            seen = {e.get("name") for e in merged[section]}
            for entry in doc.get(section) or []:
                if isinstance(entry, dict) and entry.get("name") not in seen:
                    merged[section].append(entry)
                    seen.add(entry.get("name"))
    return merged


def _named(doc: dict[str, Any], section: str, name: str, key: str) -> dict[str, Any]:
    for entry in doc.get(section) or []:
        if entry.get("name") == name:
            value = entry.get(key) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"kubeconfig {section[:-1]} {name!r} is malformed")
            return {**value, "_dir": entry.get("_dir", ".")}
    raise ConfigError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _file_or_data(entry: dict[str, Any], file_key: str, data_key: str) -> bytes | None:
    data = entry.get(data_key)
    if data:
        try:
            return base64.b64decode(data, validate=False)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"kubeconfig field {data_key} is not base64: {exc}") from exc
    name = entry.get(file_key)
    if name:
        path = Path(str(entry.get("_dir", "."))) / os.path.expanduser(str(name))
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"reading {file_key} {path}: {exc}") from exc
    return None


def _servers_of(cluster: dict[str, Any]) -> list[str]:
    for ext in cluster.get("extensions") or []:
        if isinstance(ext, dict) and ext.get("name") == SERVERS_EXTENSION:
            servers = (ext.get("extension") or {}).get("servers")
            if isinstance(servers, list) and servers:
                return [str(s) for s in servers]
    server = cluster.get("server")
    if not server:
        raise ConfigError("kubeconfig cluster has no server")
    return [s.strip() for s in str(server).split(",") if s.strip()]


def _exec_plugin(user: dict[str, Any]) -> dict[str, Any] | None:
    """The user's `exec` section, its command resolved as kubectl does (a relative path with a
    slash is relative to the kubeconfig; a bare name is looked up on PATH)."""
    spec = user.get("exec")
    if not isinstance(spec, dict):
        return None
    if not spec.get("command"):
        raise ConfigError("kubeconfig user exec section has no command")
    command = str(spec["command"])
    if "/" in command and not os.path.isabs(command):
        command = str(Path(user.get("_dir", ".")) / command)
    return {**spec, "command": command}


def load_kubeconfig(
    path: str | os.PathLike[str] | None = None,
    context: str | None = None,
    *,
    servers: list[str] | None = None,
) -> Config:
    """Resolve a kubeconfig into a `Config`.

    `path` None means `$KUBECONFIG` (merged) or `~/.kube/config`; `context` None means the
    file's current-context; `servers` overrides the server list of the cluster.
    Raises ConfigError when the file is unusable or the context/cluster/user is missing.
    """
    paths = [Path(path)] if path is not None else _default_paths()
    doc = _merge([_read(p) for p in paths if path is not None or p.exists()])
    ctx_name = context or doc.get("current-context")
    if not ctx_name:
        raise ConfigError("kubeconfig has no current-context and no context was given")
    ctx = _named(doc, "contexts", ctx_name, "context")
    if not ctx.get("cluster"):
        raise ConfigError(f"kubeconfig context {ctx_name!r} names no cluster")
    cluster = _named(doc, "clusters", ctx["cluster"], "cluster")
    user = _named(doc, "users", ctx["user"], "user") if ctx.get("user") else {}
    token_file = user.get("tokenFile")
    if token_file:
        token_file = str(Path(user["_dir"]) / os.path.expanduser(token_file))
    return Config(
        servers=list(servers) if servers else _servers_of(cluster),
        ca_data=_file_or_data(cluster, "certificate-authority", "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
        token=user.get("token"),
        token_file=token_file,
        client_cert_data=_file_or_data(user, "client-certificate", "client-certificate-data"),
        client_key_data=_file_or_data(user, "client-key", "client-key-data"),
        exec_plugin=_exec_plugin(user),
        username=user.get("username"),
        password=user.get("password"),
        namespace=ctx.get("namespace") or "default",
    )


#: where every pod finds its ServiceAccount credentials (client-go's rest.InClusterConfig)
SERVICE_ACCOUNT_DIR = SERVICE_ACCOUNT_MOUNT_PATH
#: client-go's ErrNotInCluster, word for word
NOT_IN_CLUSTER = ("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                  "KUBERNETES_SERVICE_PORT must be defined")


def service_account_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The ServiceAccount volume's directory: `$PODNS_SERVICE_ACCOUNT_DIR` (set by a podns node
    agent in loopback mode, where the volume cannot appear at its mount path), else the standard
    /var/run/secrets/kubernetes.io/serviceaccount."""
    env = os.environ if environ is None else environ
    return Path(env.get(SERVICE_ACCOUNT_DIR_ENV) or SERVICE_ACCOUNT_DIR)


def in_cluster_config(environ: Mapping[str, str] | None = None) -> Config:
    """The configuration of a program running in a pod, as client-go's `rest.InClusterConfig`:
    server `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`, the ServiceAccount
    `token` (re-read at each request, so the node agent's rotations are picked up), `ca.crt` as
    the CA when it is readable, and the `namespace` file as the default namespace.

    Raises ConfigError (`NOT_IN_CLUSTER`) without the two variables, or when the token cannot be
    read."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(NOT_IN_CLUSTER)
    directory = service_account_dir(env)
    token_file = directory / "token"
    try:
        token_file.read_text()
    except OSError as exc:
        raise ConfigError(f"reading the ServiceAccount token {token_file}: {exc}") from exc
    ca: bytes | None = None
    with contextlib.suppress(OSError):
        ca = (directory / "ca.crt").read_bytes() or None
    namespace = "default"
    with contextlib.suppress(OSError):
        namespace = (directory / "namespace").read_text().strip() or "default"
    url_host = f"[{host}]" if ":" in host else host
    return Config(servers=[f"https://{url_host}:{port}"], ca_data=ca, token_file=str(token_file),
                  namespace=namespace)


def load_config(path: str | os.PathLike[str] | None = None, context: str | None = None, *,
                servers: list[str] | None = None) -> Config:
    """The configuration to use, in client-go's order (`clientcmd.BuildConfigFromFlags`): the
    kubeconfig `path` when given; else the in-cluster configuration when running in a pod (the
    two variables set); else `$KUBECONFIG` or ~/.kube/config (`load_kubeconfig`)."""
    if path is None and context is None:
        env = os.environ
        if env.get("KUBERNETES_SERVICE_HOST") and env.get("KUBERNETES_SERVICE_PORT"):
            config = in_cluster_config(env)
            if servers:
                config.servers = [s.rstrip("/") for s in servers]
            return config
    return load_kubeconfig(path, context, servers=servers)


def in_memory(servers: list[str], **kwargs: Any) -> Config:
    """A Config without a kubeconfig file (tests, `podns up` wiring)."""
    with contextlib.suppress(KeyError):
        if isinstance(kwargs["ca_data"], str):
            kwargs["ca_data"] = kwargs["ca_data"].encode()
    return Config(servers=list(servers), **kwargs)


__all__ = ["SERVERS_EXTENSION", "Config", "in_cluster_config", "in_memory", "load_config",
           "load_kubeconfig"]
