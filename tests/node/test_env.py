"""Container environment: $(VAR) expansion, fieldRef, ConfigMap/Secret references."""

from __future__ import annotations

import base64

import pytest

from podns.node.env import ConfigError, build_env, command_line, expand, field_ref

POD = {
    "metadata": {"name": "db-0", "namespace": "prod", "uid": "u1",
                 "labels": {"app": "db", "tier": "x"}, "annotations": {"note": "hi"}},
    "spec": {"nodeName": "n1", "hostname": "db-0"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)-$(B)", "1-2"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("$$", "$"),
        ("a$b", "a$b"),
        ("$(A", "$(A"),
        ("$()", "$()"),
        ("end$", "end$"),
    ],
    ids=["two", "undefined-kept", "escaped", "dollar-dollar", "lone-dollar", "unclosed", "empty", "trailing"],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}.get) == expected


def test_env_order_fieldrefs_and_command_expansion() -> None:
    """given env referring to earlier vars and the downward API, command and args see them all."""
    container = {
        "command": ["echo", "$(GREETING)"],
        "args": ["$(POD_IP)", "$(LATER)"],
        "env": [
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "GREETING", "value": "hi $(NAME) in $(NS)"},  # NS not yet defined: kept
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        ],
    }
    env = build_env(POD, container, pod_ip="127.1.0.5", host_ip="127.0.0.1", base={"PATH": "/bin"},
                    extra={"PODNS_VOLUME_DATA": "/d"})
    assert env["GREETING"] == "hi db-0 in $(NS)"
    assert env["POD_IP"] == "127.1.0.5" and env["HOST_IP"] == "127.0.0.1"
    assert env["NODE"] == "n1" and env["APP"] == "db" and env["NOTE"] == "hi"
    assert env["LABELS"] == 'app="db"\ntier="x"'
    assert env["PATH"] == "/bin" and env["HOSTNAME"] == "db-0" and env["PODNS_VOLUME_DATA"] == "/d"
    assert command_line(container, env) == ["echo", "hi db-0 in $(NS)", "127.1.0.5", "$(LATER)"]


def test_configmap_and_secret_refs() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "C_"}],
        "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}}},
        ],
    }
    secret = {"data": {"pw": base64.b64encode(b"hunter2").decode()}}
    env = build_env(POD, container, pod_ip="", host_ip="", configmaps={"cfg": {"data": {"a": "1"}}},
                    secrets={"s": secret}, base={})
    assert env["C_a"] == "1" and env["PW"] == "hunter2" and "OPT" not in env


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}],
         'configmap "cfg" not found'),
        ([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}], "unsupported fieldRef"),
    ],
    ids=["missing-configmap", "bad-fieldref"],
)
def test_bad_references_raise_config_error(env: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_env(POD, {"env": env}, pod_ip="", host_ip="", base={})


def test_downward_api_pod_ips_dual_stack() -> None:
    """status.podIP is the primary address, status.podIPs both, comma-separated (the kubelet's)."""
    pod = {"metadata": {"name": "p"}, "spec": {}}
    ips = "10.244.0.5,fd00::5"
    assert field_ref(pod, "status.podIP", pod_ip=ips, host_ip="127.0.0.1") == "10.244.0.5"
    assert field_ref(pod, "status.podIPs", pod_ip=ips, host_ip="127.0.0.1") == ips
