"""Writing the kubeconfig files kubectl, the Python client and podns components read.

`<data-dir>/kubeconfig` authenticates with the admin token, `<data-dir>/kubeconfig-readonly`
with the read-only one. Both embed the CA (`certificate-authority-data`) so they work from any
working directory and after the data dir moves.

Distributed mode: when several API servers serve one etcd, `servers` lists them all; `server:`
stays the first (what kubectl and the official clients use) and the cluster extension
`podns.io/servers` carries the whole list, so podns components fail over between them.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from podns.api.server.authentication import write_private

CLUSTER = "podns"
#: the cluster extension listing every API server (podns.kube.config.SERVERS_EXTENSION)
SERVERS_EXTENSION = "podns.io/servers"


def kubeconfig_text(server: str, ca_pem: bytes | None, token: str, user: str,
                    servers: list[str] | None = None) -> str:
    """A one-cluster, one-user, one-context kubeconfig as YAML; `servers` (None: only
    `server`) adds the `podns.io/servers` extension when it names more than one."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if servers is not None and len(servers) > 1:
        cluster["extensions"] = [{"name": SERVERS_EXTENSION, "extension": {"servers": servers}}]
    ctx_name = f"{user}@{CLUSTER}"
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
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
