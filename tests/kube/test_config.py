"""Kubeconfig parsing: contexts, merging, relative paths, inline data, several servers, errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from podns.kube.config import SERVERS_EXTENSION, Config, load_kubeconfig
from podns.kube.errors import ConfigError

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def kubeconfig(server: str = "https://127.0.0.1:6443", **cluster: object) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "main",
        "clusters": [{"name": "c1", "cluster": {"server": server, **cluster}},
                     {"name": "c2", "cluster": {"server": "http://127.0.0.2:8080"}}],
        "users": [{"name": "u1", "user": {"token": "secret"}},
                  {"name": "u2", "user": {"tokenFile": "tok"}}],
        "contexts": [{"name": "main", "context": {"cluster": "c1", "user": "u1",
                                                  "namespace": "apps"}},
                     {"name": "other", "context": {"cluster": "c2", "user": "u2"}}],
    }


def test_current_context_with_relative_ca_file(tmp_path: Path) -> None:
    """The current context's server, token and namespace; a relative CA path is read relative
    to the kubeconfig's directory."""
    (tmp_path / "ca.crt").write_bytes(CA)
    cfg = load_kubeconfig(write(tmp_path / "config", kubeconfig(**{"certificate-authority":
                                                                    "ca.crt"})))
    assert cfg.servers == ["https://127.0.0.1:6443"] and cfg.server == cfg.servers[0]
    assert cfg.token == "secret" and cfg.bearer_token() == "secret"
    assert cfg.ca_data == CA and cfg.namespace == "apps" and not cfg.insecure


def test_named_context_and_token_file(tmp_path: Path) -> None:
    """context= selects another context; tokenFile is re-read on each use."""
    (tmp_path / "tok").write_text("t1\n")
    cfg = load_kubeconfig(write(tmp_path / "config", kubeconfig()), context="other")
    assert cfg.servers == ["http://127.0.0.2:8080"] and cfg.namespace == "default"
    assert cfg.bearer_token() == "t1"
    (tmp_path / "tok").write_text("t2")
    assert cfg.bearer_token() == "t2"
    assert cfg.ssl_context() is None  # plain http only


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ({"server": "https://a:1,https://b:2"}, ["https://a:1", "https://b:2"]),
        ({"server": "https://a:1", "extensions": [
            {"name": SERVERS_EXTENSION, "extension": {"servers": ["https://x:1", "https://y:2"]}}]},
         ["https://x:1", "https://y:2"]),
    ],
    ids=["comma-separated", "extension"],
)
def test_several_servers(tmp_path: Path, cluster: dict, expected: list[str]) -> None:
    """Several API servers come from a comma-separated server or the podns.io/servers
    extension; an explicit servers= argument wins over both."""
    doc = kubeconfig()
    doc["clusters"][0]["cluster"] = cluster
    path = write(tmp_path / "config", doc)
    assert load_kubeconfig(path).servers == expected
    assert load_kubeconfig(path, servers=["http://z:3/"]).servers == ["http://z:3"]


def test_inline_data_and_insecure(tmp_path: Path) -> None:
    """certificate-authority-data and client-*-data are base64-decoded."""
    doc = kubeconfig(**{"certificate-authority-data": base64.b64encode(CA).decode(),
                        "insecure-skip-tls-verify": True})
    doc["users"][0]["user"] = {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                               "client-key-data": base64.b64encode(b"KEY").decode()}
    cfg = load_kubeconfig(write(tmp_path / "config", doc))
    assert cfg.ca_data == CA and cfg.insecure
    assert (cfg.client_cert_data, cfg.client_key_data) == (b"CERT", b"KEY")
    assert cfg.bearer_token() is None


def test_kubeconfig_env_merges_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """$KUBECONFIG lists files merged first-wins by name; current-context from the first."""
    first = {"current-context": "other", "clusters": [
        {"name": "c2", "cluster": {"server": "http://127.0.0.9:1"}}]}
    write(tmp_path / "a", first)
    write(tmp_path / "b", kubeconfig())
    (tmp_path / "tok").write_text("x")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    cfg = load_kubeconfig()
    assert cfg.servers == ["http://127.0.0.9:1"] and cfg.bearer_token() == "x"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("current-context"), "no current-context"),
        (lambda d: d.update({"current-context": "nope"}), "no context named 'nope'"),
        (lambda d: d["contexts"][0]["context"].update(cluster="zz"), "no cluster named 'zz'"),
        (lambda d: d["clusters"][0]["cluster"].update(server="ftp://x"), "must start with"),
        (lambda d: d["clusters"][0]["cluster"].update({"certificate-authority": "missing.crt"}),
         "reading certificate-authority"),
    ],
    ids=["no-current", "unknown-context", "unknown-cluster", "bad-scheme", "missing-ca"],
)
def test_errors_are_config_errors(tmp_path: Path, mutate: object, message: str) -> None:
    """Unusable kubeconfigs raise ConfigError naming the problem."""
    doc = kubeconfig()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=message):
        load_kubeconfig(write(tmp_path / "config", doc))


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="reading kubeconfig"):
        load_kubeconfig(tmp_path / "absent")
    (tmp_path / "bad").write_text("clusters: [\n")
    with pytest.raises(ConfigError, match="parsing kubeconfig"):
        load_kubeconfig(tmp_path / "bad")


def test_config_without_servers_is_rejected() -> None:
    with pytest.raises(ConfigError):
        Config(servers=[])


def test_exec_credential_plugin(tmp_path: Path) -> None:
    """An exec plugin's token is used and cached until shortly before its expiry."""
    import stat
    import sys

    script = tmp_path / "plugin.py"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, pathlib\n"
        "count = pathlib.Path(os.environ['COUNT_FILE'])\n"
        "n = int(count.read_text() or 0) + 1 if count.exists() else 1\n"
        "count.write_text(str(n))\n"
        "assert json.loads(os.environ['KUBERNETES_EXEC_INFO'])['kind'] == 'ExecCredential'\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': f'tok{n}', "
        "'expirationTimestamp': os.environ['EXPIRY']}}))\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    doc = kubeconfig()
    doc["users"][0]["user"] = {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./plugin.py",
        "env": [{"name": "COUNT_FILE", "value": str(tmp_path / "count")},
                {"name": "EXPIRY", "value": "2999-01-01T00:00:00Z"}]}}
    cfg = load_kubeconfig(write(tmp_path / "config", doc))
    assert cfg.bearer_token() == "tok1" and cfg.bearer_token() == "tok1"  # cached
    expired = load_kubeconfig(write(tmp_path / "config2", {
        **doc, "users": [{"name": "u1", "user": {"exec": {
            **doc["users"][0]["user"]["exec"],
            "env": [{"name": "COUNT_FILE", "value": str(tmp_path / "count")},
                    {"name": "EXPIRY", "value": "2000-01-01T00:00:00Z"}]}}}]}))
    assert expired.bearer_token() == "tok2" and expired.bearer_token() == "tok3"  # re-run
    doc["users"][0]["user"]["exec"]["command"] = "./missing-plugin"
    broken = load_kubeconfig(write(tmp_path / "config3", doc))
    with pytest.raises(ConfigError, match="exec credential plugin"):
        broken.bearer_token()
