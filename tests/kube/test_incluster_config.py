"""In-cluster configuration, as client-go's rest.InClusterConfig: env + token file + ca.crt +
namespace, the token re-read after a rotation, the loopback-mode directory variable, and
`load_config`'s order (explicit kubeconfig, then in-cluster, then $KUBECONFIG)."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.kube import errors
from podns.kube.config import NOT_IN_CLUSTER, in_cluster_config, load_config


def sa_dir(tmp_path: Path) -> Path:
    d = tmp_path / "sa"
    d.mkdir()
    (d / "token").write_text("tok-1")
    (d / "ca.crt").write_text("CA")
    (d / "namespace").write_text("team-a")
    return d


def test_in_cluster_reads_env_token_ca_namespace(tmp_path: Path) -> None:
    """given the variables and the ServiceAccount directory, the config points at
    https://host:port with the CA and namespace, and reads the token file at each use."""
    d = sa_dir(tmp_path)
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
           "PODNS_SERVICE_ACCOUNT_DIR": str(d)}
    cfg = in_cluster_config(env)
    assert cfg.servers == ["https://10.96.0.1:443"]
    assert cfg.ca_data == b"CA" and cfg.namespace == "team-a"
    assert cfg.bearer_token() == "tok-1"
    (d / "token").write_text("tok-2\n")  # the node agent rotated it
    assert cfg.bearer_token() == "tok-2"
    v6 = in_cluster_config({**env, "KUBERNETES_SERVICE_HOST": "fd00::1"})
    assert v6.servers == ["https://[fd00::1]:443"]


@pytest.mark.parametrize("env", [{}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}], ids=["none", "no-port"])
def test_not_in_cluster(env: dict[str, str]) -> None:
    """given no (or half the) variables, client-go's ErrNotInCluster wording."""
    with pytest.raises(errors.ConfigError, match="must be defined") as exc:
        in_cluster_config(env)
    assert str(exc.value) == NOT_IN_CLUSTER


def test_missing_token_is_an_error(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1",
           "PODNS_SERVICE_ACCOUNT_DIR": str(tmp_path)}
    with pytest.raises(errors.ConfigError, match="ServiceAccount token"):
        in_cluster_config(env)


def test_load_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """given both a $KUBECONFIG and the in-cluster variables, no argument means in-cluster (as
    client-go's BuildConfigFromFlags); an explicit kubeconfig wins."""
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: k, cluster: "
                  "{server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: k}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(kc))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert load_config().servers == ["https://127.0.0.1:1"]
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    monkeypatch.setenv("PODNS_SERVICE_ACCOUNT_DIR", str(sa_dir(tmp_path)))
    assert load_config().servers == ["https://10.96.0.1:443"]
    assert load_config(kc).servers == ["https://127.0.0.1:1"]
