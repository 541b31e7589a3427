"""Mount points shared by the agents of several clusters on one machine (podns.node.mountpoints)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from podns.node.mountpoints import MountPoints
from podns.node.sandbox import Mount

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and mounts need root")


@pytest.fixture
def target() -> Iterator[Path]:
    """A mount point two levels below a fresh top-level directory the host does not have."""
    top = Path(f"/podns-test-mp-{uuid.uuid4().hex[:8]}")
    yield top / "serviceaccount"
    for path in (top / "serviceaccount", top):
        if path.is_dir():
            path.rmdir()


@needs_root
def test_a_mount_in_another_clusters_pod_outlives_its_creators_last_pod(tmp_path: Path, target: Path) -> None:
    """given two agents (two clusters) whose pods mount on the same missing host path, when the
    agent that created it loses its last pod, the path stays (removing it would detach the other
    pod's mount: the ServiceAccount files would vanish under it); the last one out removes it."""
    source = tmp_path / "volume"
    source.mkdir()
    (source / "ca.crt").write_text("the CA\n")
    a, b = MountPoints(tmp_path / "a.json"), MountPoints(tmp_path / "b.json")
    mount = (Mount(str(source), str(target), read_only=True),)
    a.ensure("pod-a", mount)
    assert target.is_dir()
    b.ensure("pod-b", mount)
    script = (f"mount --bind {source} {target} && echo mounted && read line && cat {target}/ca.crt")
    pod = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert pod.stdout is not None and pod.stdout.readline() == "mounted\n"
        a.release("pod-a")  # cluster a's pod is gone
        assert target.is_dir()
        out, err = pod.communicate("go\n", timeout=30)
    finally:
        pod.kill()
    assert pod.returncode == 0 and out == "the CA\n", err
    b.release("pod-b")
    assert not target.exists() and not target.parent.exists()


@needs_root
def test_only_what_podns_created_is_removed(tmp_path: Path, target: Path) -> None:
    """a path that existed before is never removed, nor is a created one that is no longer
    empty; one agent's pods count once each until the last of them goes."""
    target.parent.mkdir()  # the host had the parent already
    agent = MountPoints(tmp_path / "state.json")
    mount = (Mount(str(tmp_path), str(target)),)
    agent.ensure("p1", mount)
    agent.ensure("p2", mount)
    agent.release("p1")
    assert target.is_dir()
    agent.release("p2")
    assert not target.exists() and target.parent.is_dir()
    agent.ensure("p3", mount)
    (target / "kept").write_text("someone's file")
    agent.stop()
    assert (target / "kept").exists()
    (target / "kept").unlink()


@needs_root
def test_a_crashed_agents_paths_are_removed_when_it_starts_again(tmp_path: Path, target: Path) -> None:
    """an agent killed with its pods (no clean-up, its locks gone with its process) leaves its
    paths in its state file; the same agent started again removes them."""
    state = tmp_path / "state.json"
    code = ("import os, pathlib\nfrom podns.node.mountpoints import MountPoints\n"
            "from podns.node.sandbox import Mount\n"
            f"mount = Mount({str(tmp_path)!r}, {str(target)!r})\n"
            f"MountPoints(pathlib.Path({str(state)!r})).ensure('p', (mount,))\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert target.is_dir()
    MountPoints(state).start()
    assert not target.exists() and not target.parent.exists()


@needs_root
def test_an_older_podns_state_file_is_honoured(tmp_path: Path, target: Path) -> None:
    """the state an older podns wrote ({"created": [...]}, no markers) is removed as before."""
    target.mkdir(parents=True)
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"created": [str(target.parent), str(target)]}))
    MountPoints(state).start()
    assert not target.exists() and not target.parent.exists()
