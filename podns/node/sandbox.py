"""Entering a pod's sandbox in namespace mode: what a process does between fork and exec.

A `Sandbox` describes where one container's processes (its instances, exec probes and exec
hooks) run: the pod's network namespace, a private mount namespace of their own with the pod's
`resolv.conf` on `/etc/resolv.conf` and each volume bind-mounted at its `mountPath` (read-only
when the mount says so), a UTS namespace whose host name is the pod's, then the working
directory and the user. `enter()` does that with plain system calls (setns, unshare, mount,
sethostname, chdir, setgid/setuid) in the child, so that the pid the agent watches is the
container's own process, as with the loopback mode; the user is switched last, after the
privileged steps.

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
import os
from dataclasses import dataclass

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, flags: int, what: str) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), None,
                       ctypes.c_ulong(flags), None), what)


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
    mounts: tuple[Mount, ...] = ()
    cwd: str | None = None
    user: int | None = None
    group: int | None = None

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
        if self.resolv_conf and os.path.exists("/etc/resolv.conf"):
            _mount(self.resolv_conf, "/etc/resolv.conf", MS_BIND, "mounting resolv.conf")
        for m in self.mounts:
            _mount(m.source, m.target, MS_BIND | MS_REC, f"mounting {m.source} on {m.target}")
            if m.read_only:
                _mount(None, m.target, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC,
                       f"making {m.target} read-only")
        if self.cwd:
            os.makedirs(self.cwd, exist_ok=True)
            os.chdir(self.cwd)
        if self.group is not None:
            os.setgroups([])
            os.setgid(self.group)
        if self.user is not None:
            if self.group is None:
                os.setgroups([])
            os.setuid(self.user)
