"""Writing the kubeconfig files kubectl, the Python client and podns components read.

`<data-dir>/kubeconfig` authenticates with the admin token, `<data-dir>/kubeconfig-readonly`
with the read-only one. Both embed the CA (`certificate-authority-data`) so they work from any
working directory and after the data dir moves.

Components get their own identities, as in Kubernetes: `controller-manager.kubeconfig` (user
`system:kube-controller-manager`), `dns.kubeconfig` (`system:podns-dns`) and
`node-<name>.kubeconfig` (`system:node:<name>` in `system:nodes`) authenticate with client
certificates signed by the cluster CA (CN = user, O = groups), written 0600 into the data dir;
their rights are the default RBAC policy's (`podns.api.handlers.rbacpolicy`) and, for nodes, the
Node authorizer's.

Distributed mode: when several API servers serve one etcd, `servers` lists them all; `server:`
stays the first (what kubectl and the official clients use) and the cluster extension
`podns.io/servers` carries the whole list, so podns components fail over between them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from podns.api.handlers import authorization
from podns.api.server import certs
from podns.api.server.authentication import write_private

CLUSTER = "podns"
#: the cluster extension listing every API server (podns.kube.config.SERVERS_EXTENSION)
SERVERS_EXTENSION = "podns.io/servers"


def kubeconfig_text(server: str, ca_pem: bytes | None, token: str | None, user: str,
                    servers: list[str] | None = None, *,
                    client_cert: tuple[bytes, bytes] | None = None) -> str:
    """A one-cluster, one-user, one-context kubeconfig as YAML, authenticating with `token` or
    `client_cert` (certificate PEM, key PEM; embedded as `client-certificate-data`/
    `client-key-data`); `servers` (None: only `server`) adds the `podns.io/servers` extension
    when it names more than one."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if servers is not None and len(servers) > 1:
        cluster["extensions"] = [{"name": SERVERS_EXTENSION, "extension": {"servers": servers}}]
    ctx_name = f"{user}@{CLUSTER}"
    credentials: dict[str, str] = {}
    if token is not None:
        credentials["token"] = token
    if client_cert is not None:
        credentials["client-certificate-data"] = base64.b64encode(client_cert[0]).decode()
        credentials["client-key-data"] = base64.b64encode(client_cert[1]).decode()
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": ctx_name,
                      "context": {"cluster": CLUSTER, "user": user, "namespace": "default"}}],
        "current-context": ctx_name,
        "preferences": {},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def write_kubeconfigs(data_dir: Path, server: str, ca_cert: Path | None,
                      admin_token: str, readonly_token: str,
                      servers: list[str] | None = None) -> tuple[Path, Path]:
    """Write the admin and read-only kubeconfigs (atomically); returns their paths.
    `servers`: every API server of the cluster, `server` first (None: only `server`)."""
    ca_pem = ca_cert.read_bytes() if ca_cert is not None else None
    admin = data_dir / "kubeconfig"
    readonly = data_dir / "kubeconfig-readonly"
    write_private(admin, kubeconfig_text(server, ca_pem, admin_token, "admin", servers))
    write_private(readonly, kubeconfig_text(server, ca_pem, readonly_token, "readonly", servers))
    return admin, readonly


#: the components' identities: kubeconfig file name -> (user, groups), as Kubernetes names them
#: (kubeadm's controller-manager.conf, kubelet.conf); the node's name is filled in
CONTROLLER_MANAGER_KUBECONFIG = "controller-manager.kubeconfig"
DNS_KUBECONFIG = "dns.kubeconfig"
COMPONENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    CONTROLLER_MANAGER_KUBECONFIG: (authorization.CONTROLLER_MANAGER_USER, ()),
    DNS_KUBECONFIG: (authorization.DNS_USER, ()),
}


def node_kubeconfig_name(node: str) -> str:
    """The file name of node `node`'s kubeconfig in a data dir."""
    return f"node-{node}.kubeconfig"


def write_client_kubeconfig(path: Path, ca_dir: Path, *, user: str, groups: tuple[str, ...],
                            server: str, servers: list[str] | None = None) -> Path:
    """Write (atomically, 0600) a kubeconfig for `user` in `groups` authenticating with a fresh
    client certificate signed by the CA in `ca_dir`; returns `path`."""
    cert = certs.issue_client(ca_dir, user=user, groups=groups)
    ca_pem = (ca_dir / "ca.crt").read_bytes()
    write_private(path, kubeconfig_text(server, ca_pem, None, user, servers, client_cert=cert))
    return path


def write_node_kubeconfig(path: Path, ca_dir: Path, node: str, *, server: str,
                          servers: list[str] | None = None) -> Path:
    """Write node `node`'s kubeconfig: user `system:node:<node>` in group `system:nodes`, what
    the Node authorizer (`podns.api.handlers.nodeauthorizer`) recognises."""
    return write_client_kubeconfig(path, ca_dir, user=authorization.node_user(node),
                                   groups=(authorization.NODES_GROUP,), server=server, servers=servers)


def write_component_kubeconfigs(data_dir: Path, server: str,
                                servers: list[str] | None = None) -> dict[str, Path]:
    """Write the controller manager's and the cluster DNS's kubeconfigs into `data_dir` (its CA
    signs their certificates); returns {file name: path}."""
    return {name: write_client_kubeconfig(data_dir / name, data_dir, user=user, groups=groups,
                                          server=server, servers=servers)
            for name, (user, groups) in COMPONENTS.items()}
