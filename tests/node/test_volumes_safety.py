"""Volumes the node agent refuses or writes safely: file modes of configMap/secret volumes
(`defaultMode`, `items[].mode`), and paths that would leave the volume (`subPath`, `items[].path`,
`claimName`) refused before anything is created, even when the API server let them through."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from podns.node.volumes import VolumeError, container_env, prepare

SECRET = {"metadata": {"name": "creds"},
          "data": {"password": base64.b64encode(b"s3cret").decode(),
                   "user": base64.b64encode(b"app").decode()}}


def pod(*volumes: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "team-a", "uid": "u-1"},
            "spec": {"volumes": list(volumes)}}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_secret_files_honour_default_mode_and_item_modes(tmp_path: Path) -> None:
    """given defaultMode 0400 and one item with mode 0600, the files have exactly those modes;
    without defaultMode they are 0644 (Kubernetes' default, 420), whatever the umask."""
    old = os.umask(0o077)
    try:
        out = prepare(pod({"name": "a", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                                   "items": [{"key": "password", "path": "pw", "mode": 0o600},
                                                             {"key": "user", "path": "user"}]}},
                          {"name": "b", "secret": {"secretName": "creds"}}),
                      tmp_path, secrets={"creds": SECRET})
    finally:
        os.umask(old)
    assert (out["a"] / "pw").read_text() == "s3cret"
    assert mode(out["a"] / "pw") == 0o600
    assert mode(out["a"] / "user") == 0o400
    assert mode(out["b"] / "password") == 0o644


def test_rewriting_a_volume_file_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    """given a symlink where a key's file goes (a pod writes into its volume), the next write
    replaces the link and leaves its target alone."""
    spec = {"name": "a", "secret": {"secretName": "creds"}}
    out = prepare(pod(spec), tmp_path, secrets={"creds": SECRET})
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (out["a"] / "password").unlink()
    (out["a"] / "password").symlink_to(victim)
    prepare(pod(spec), tmp_path, secrets={"creds": SECRET})
    assert victim.read_text() == "untouched"
    assert not (out["a"] / "password").is_symlink()
    assert (out["a"] / "password").read_text() == "s3cret"


@pytest.mark.parametrize("path", ["../../../escaped", "/tmp/escaped", "a/../../escaped", ""],
                         ids=["dotdot", "absolute", "inner-dotdot", "empty"])
def test_items_path_leaving_the_volume_is_refused(tmp_path: Path, path: str) -> None:
    """given an items[].path that is absolute, empty or climbs out with `..`, the volume fails
    (FailedMount) and no file is written anywhere."""
    with pytest.raises(VolumeError, match="path"):
        items = [{"key": "user", "path": path}]
        prepare(pod({"name": "a", "secret": {"secretName": "creds", "items": items}}),
                tmp_path / "data", secrets={"creds": SECRET})
    assert not list(tmp_path.rglob("escaped"))
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("claim", ["../../../etc", "a/b", "..", ""],
                         ids=["dotdot", "slash", "parent", "empty"])
def test_claim_name_with_a_slash_is_refused(tmp_path: Path, claim: str) -> None:
    """given a persistentVolumeClaim whose claimName is not a plain name, nothing is created."""
    with pytest.raises(VolumeError, match="claimName"):
        prepare(pod({"name": "d", "persistentVolumeClaim": {"claimName": claim}}), tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "etc").exists()


@pytest.mark.parametrize("sub", ["..", "../x", "a/../../x", "/etc"],
                         ids=["dotdot", "dotdot-x", "inner", "absolute"])
def test_sub_path_leaving_the_volume_is_refused(tmp_path: Path, sub: str) -> None:
    """given a volumeMount subPath that is absolute or climbs out, the container gets no path
    and nothing is created outside the volume."""
    vol = tmp_path / "vol"
    vol.mkdir()
    with pytest.raises(VolumeError, match="subPath"):
        container_env({"volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": sub}]}, {"v": vol})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol"]


def test_sub_path_through_a_symlink_out_of_the_volume_is_refused(tmp_path: Path) -> None:
    """given a symlink inside the volume pointing outside it (a pod can make one in an emptyDir),
    a subPath through it is refused (the kubelet's CVE-2017-1002101 check)."""
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "link").symlink_to(tmp_path)
    with pytest.raises(VolumeError, match="subPath"):
        container_env({"volumeMounts": [{"name": "v", "mountPath": "/m", "subPath": "link/x"}]}, {"v": vol})
    assert not (tmp_path / "x").exists()


def test_prepare_refuses_a_container_sub_path_before_creating_volumes(tmp_path: Path) -> None:
    """given a container whose volumeMount subPath climbs out, preparing the pod's volumes fails
    (FailedMount) before any directory is made."""
    spec = pod({"name": "v", "emptyDir": {}})
    spec["spec"]["containers"] = [{"name": "c", "volumeMounts": [{"name": "v", "mountPath": "/m",
                                                                  "subPath": "../../../etc"}]}]
    with pytest.raises(VolumeError, match="must not contain"):
        prepare(spec, tmp_path / "data")
    assert not (tmp_path / "data").exists()
