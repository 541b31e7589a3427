"""Container images built locally for the podman runtime's tests and benchmarks (no registry):
a root file system of Debian's static busybox and its applets plus one script, imported with
`podman import --change ...`. Names carry a caller-chosen unique prefix; `remove` deletes them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

APPLETS = ("sh", "httpd", "hostname", "cat", "echo", "id", "mkdir", "sleep", "test", "pwd", "kill", "nc")


def static_busybox() -> str | None:
    """The path of a busybox with no ELF interpreter (runs in an image with nothing else)."""
    path = shutil.which("busybox")
    if path is None or b"ld-linux" in Path(path).read_bytes()[:8192]:
        return None
    return path


def build(name: str, workdir: Path, *, script: str, changes: list[str]) -> str:
    """Import an image `name` whose root holds busybox, its applets in /bin and `script` as
    /entry.sh (executable); `changes` are `podman import --change` lines. Returns `name`."""
    busybox = static_busybox()
    assert busybox is not None, "a static busybox (Debian busybox-static) is needed"
    root = workdir / "rootfs"
    (root / "bin").mkdir(parents=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", root / "bin" / applet)
    for d in ("etc", "tmp", "proc", "sys", "dev", "srv"):
        (root / d).mkdir()
    (root / "entry.sh").write_text(script)
    (root / "entry.sh").chmod(0o755)
    tar = workdir / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(root, arcname=".")
    flags = [arg for change in changes for arg in ("--change", change)]
    subprocess.run(["podman", "import", "-q", *flags, str(tar), name], check=True, capture_output=True)
    return name


def remove(name: str) -> None:
    subprocess.run(["podman", "rmi", "--force", name], capture_output=True)
