"""Writing the kubeconfig files kubectl, the Python client and podns components read.

`<data-dir>/kubeconfig` authenticates with the admin token, `<data-dir>/kubeconfig-readonly`
with the read-only one. Both embed the CA (`certificate-authority-data`) so they work from any
working directory and after the data dir moves.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from podns.api.auth import write_private

CLUSTER = "podns"


def kubeconfig_text(server: str, ca_pem: bytes | None, token: str, user: str) -> str:
    """A one-cluster, one-user, one-context kubeconfig as YAML."""
    cluster: dict[str, object] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
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
                      admin_token: str, readonly_token: str) -> tuple[Path, Path]:
    """Write the admin and read-only kubeconfigs; returns their paths."""
    ca_pem = ca_cert.read_bytes() if ca_cert is not None else None
    admin = data_dir / "kubeconfig"
    readonly = data_dir / "kubeconfig-readonly"
    write_private(admin, kubeconfig_text(server, ca_pem, admin_token, "admin"))
    write_private(readonly, kubeconfig_text(server, ca_pem, readonly_token, "readonly"))
    return admin, readonly
