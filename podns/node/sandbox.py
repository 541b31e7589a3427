"""Entering a pod's sandbox in namespace mode: what a process does between fork and exec.

A `Sandbox` describes where one container's processes (its instances, exec probes and exec
hooks) run: the pod's network namespace, a private mount namespace of their own with the pod's
`resolv.conf` on `/etc/resolv.conf` and its `hosts` on `/etc/hosts`, a `/dev/shm` of its own (a
tmpfs of `shm_size` bytes, Kubernetes' 64 MiB by default), each volume bind-mounted at its
`mountPath` (read-only when the mount says so), a UTS namespace whose host name is the pod's,
then the working directory and the user. `enter()` does that with plain system calls (setns,
unshare, mount, sethostname, chdir, setgroups/setgid/setuid) in the child, so that the pid the
agent watches is the container's own process, as with the loopback mode; the user is switched
last, after the privileged steps.

The container's "image" is the host, so a `runAsUser` the host's `/etc/passwd` does not know
(999, the postgres user of the official image) would make programs that look their user up
(initdb, psql) fail: `user_db` writes copies of `/etc/passwd` and `/etc/group` with an entry
added for it, named after the number, as podman does for `--user` (its `--passwd` default), and
the sandbox mounts them on the originals.

The mount namespace is private from the start (`MS_REC|MS_PRIVATE` on `/`), so nothing mounted
for a container is visible on the host or in another container, and it all disappears with the
container's last process. What cannot be avoided: a `mountPath` that does not exist on the host
is created there as an empty directory (or file) to mount on, because a mount namespace shares
the file system itself; `PodNetwork` removes those when the last pod using them is gone.

`/sys` is not remounted (unlike `ip netns exec`), so `/sys/class/net` shows the host's links.
`enter()` raises OSError with a message naming the step; the runtime reports it as StartError.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
#: what Docker, containerd and so Kubernetes give a pod's /dev/shm
DEFAULT_SHM_SIZE = 64 * 2**20

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int, what: str, *, fstype: str | None = None,
           data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None), what)


@dataclass(frozen=True, slots=True)
class Mount:
    """A bind mount: host `source` appears at `target` inside the container."""

    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class Sandbox:
    """Where a container's processes run (see the module docstring). `user`/`group` None: keep
    the agent's; `cwd` is created inside the sandbox when missing."""

    netns_path: str
    hostname: str = ""
    resolv_conf: str = ""
    hosts: str = ""  # the pod's /etc/hosts ("": the host's)
    mounts: tuple[Mount, ...] = ()
    cwd: str | None = None
    user: int | None = None
    group: int | None = None
    groups: tuple[int, ...] = ()  # supplementary groups (fsGroup, supplementalGroups)
    shm_size: int = DEFAULT_SHM_SIZE  # bytes of the private /dev/shm (0: keep the host's)
    passwd: str = ""  # files from `user_db`, mounted on /etc/passwd and /etc/group
    group_file: str = ""

    def covers(self, path: str) -> bool:
        """True when `path` lies under one of the mount targets (so only the sandbox sees it)."""
        return any(path == m.target or path.startswith(m.target.rstrip("/") + "/") for m in self.mounts)

    def enter(self) -> None:
        """Move the calling process into the sandbox. Only for a freshly forked child."""
        fd = os.open(self.netns_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(fd, CLONE_NEWNET), f"entering network namespace {self.netns_path}")
        finally:
            os.close(fd)
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "creating the mount namespace")
        _mount(None, "/", MS_REC | MS_PRIVATE, "making / private")
        if self.hostname:
            name = self.hostname.encode()[:64]
            _check(_libc.sethostname(name, len(name)), "setting the host name")
        for source, target in ((self.resolv_conf, "/etc/resolv.conf"), (self.hosts, "/etc/hosts"),
                               (self.passwd, "/etc/passwd"), (self.group_file, "/etc/group")):
            if source and os.path.exists(target):
                _mount(source, target, MS_BIND, f"mounting {target}")
        if self.shm_size > 0 and os.path.isdir("/dev/shm"):
            _mount("shm", "/dev/shm", MS_NOSUID | MS_NODEV, "mounting /dev/shm", fstype="tmpfs",
                   data=f"size={self.shm_size},mode=1777")
        for m in self.mounts:
            _mount(m.source, m.target, MS_BIND | MS_REC, f"mounting {m.source} on {m.target}")
            if m.read_only:
                _mount(None, m.target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC,
                       f"making {m.target} read-only")
        if self.cwd:
            os.makedirs(self.cwd, exist_ok=True)
            os.chdir(self.cwd)
        if self.group is not None or self.user is not None or self.groups:
            os.setgroups(list(self.groups))
        if self.group is not None:
            os.setgid(self.group)
        if self.user is not None:
            os.setuid(self.user)


def user_db(directory: Path, user: int | None, group: int | None) -> tuple[str, str]:
    """Copies of the host's /etc/passwd and /etc/group in `directory` with entries added for
    `user` / `group` when the host has none (named after the number); ("", "") when nothing is
    missing, so the sandbox keeps the host's files."""
    add_user = user is not None and not _known(pwd.getpwuid, user)
    add_group = group is not None and not _known(grp.getgrgid, group)
    if not add_user and not add_group:
        return "", ""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, extra in (("passwd", f"{user}:x:{user}:{group if group is not None else 0}:"
                                   f"container user:/:/usr/sbin/nologin\n" if add_user else ""),
                        ("group", f"{group}:x:{group}:\n" if add_group else "")):
        text = Path("/etc", name).read_text() if os.path.exists(f"/etc/{name}") else ""
        if text and not text.endswith("\n"):
            text += "\n"
        path = directory / name
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text + extra)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        paths.append(str(path))
    return paths[0], paths[1]


def _known(lookup: Callable[[int], object], ident: int) -> bool:
    try:
        lookup(ident)
    except KeyError:
        return False
    return True
