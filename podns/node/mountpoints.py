"""Mount points on the host for namespace-mode pods, shared safely between agents.

A container of the process runtime mounts its volumes in a private mount namespace, but that
namespace shares the host's file system: a `mountPath` the host lacks (the ServiceAccount
volume's `/var/run/secrets/kubernetes.io/serviceaccount`) is created there to mount on, and
removed once no pod uses it. "No pod" has to hold for the whole machine: removing a directory
that is a mount point in another mount namespace detaches that mount (Linux >= 3.18), so an
agent of one cluster that removed the path its own last pod used took the token, `ca.crt` and
namespace files away from a running pod of another cluster (whose client then failed with
ENOENT on `ca.crt`).

So an agent holds a shared flock on `<dir>/<hash of the path>.lock` for every path that any of
its pods mounts on (the target and its parents) for as long as one does. A path is removed only
by an agent that then gets the exclusive lock (nobody else uses it), only if podns created it
(a `.created` marker beside the lock, written before the mkdir) and only if it is empty (or an
empty file). Whoever is last removes it, not necessarily its creator. A crashed agent's locks
go with its process; the paths it used are kept in its data dir (`mountpoints.json`) and tried
again when it starts.

`<dir>` is `/run/podns/mountpoints` as root, whatever `PODNS_LOCK_DIR` says: the file system is
shared by everything on the machine, simulated machines (tests/netsim.py) included.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from podns.node.ipam import RUN_DIR, lock_dir, private_dir
from podns.node.sandbox import Mount


def locks_dir() -> Path:
    """Where the machine-wide mount point locks live (see the module docstring)."""
    base = private_dir(RUN_DIR) if os.geteuid() == 0 else lock_dir()
    return private_dir(base / "mountpoints")


def _lock_path(directory: Path, path: str) -> Path:
    return directory / (hashlib.sha256(path.encode()).hexdigest()[:32] + ".lock")


class MountPoints:
    """The mount points one agent's pods use: created when missing, removed when nobody on the
    machine uses them any more. Methods raise OSError (LockDirError for an unsafe lock dir)."""

    def __init__(self, state: Path) -> None:
        self._state = state
        self._users: dict[str, set[str]] = {}  # path -> uids of our pods mounting on or below it
        self._held: dict[str, int] = {}  # path -> fd holding its shared lock
        self._mutex = threading.Lock()  # the agent calls from its loop and from worker threads

    def start(self) -> None:
        """Remove what this agent used before it stopped without cleaning up (a crash)."""
        with self._mutex:
            used, legacy = self._load()
            directory = locks_dir()
            for path in legacy:  # an older podns kept only the paths it created, and no marker
                _lock_path(directory, path).with_suffix(".created").write_text(path + "\n")
            self._remove(used + legacy)
            self._save()

    def ensure(self, uid: str, mounts: Iterable[Mount]) -> None:
        """Make sure every target of `mounts` exists (a directory, or an empty file for a file
        source), with pod `uid` counted as a user of it and of its parents."""
        with self._mutex:
            directory = locks_dir()
            grew = False
            for m in mounts:
                target = Path(m.target)
                chain = [target, *target.parents][:-1]  # never "/"
                for path in reversed(chain):  # shallowest first
                    key = str(path)
                    if key not in self._held:
                        self._held[key] = self._lock(directory, key, fcntl.LOCK_SH)
                        self._users[key] = set()
                        grew = True
                    self._users[key].add(uid)
                    if not path.exists() and not path.is_symlink():
                        self._create(directory, path, is_file=path == target and os.path.isfile(m.source))
            if grew:
                self._save()

    def release(self, uid: str) -> None:
        """Pod `uid` mounts nothing any more: drop the paths no other pod of ours uses."""
        with self._mutex:
            unused = []
            for path, users in self._users.items():
                users.discard(uid)
                if not users:
                    unused.append(path)
            if unused:
                self._remove(unused)
                self._save()

    def stop(self) -> None:
        """Drop every path (the agent stops: its pods are gone)."""
        with self._mutex:
            self._remove(list(self._users))
            self._save()

    def _remove(self, paths: Iterable[str]) -> None:
        directory = locks_dir()
        for path in sorted(set(paths), key=lambda p: p.count("/"), reverse=True):  # deepest first
            self._users.pop(path, None)
            fd = self._held.pop(path, None)
            if fd is not None:
                os.close(fd)  # our shared lock goes: can we have it alone?
            try:
                fd = self._lock(directory, path, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another agent's pod uses it: the last one out removes it
            try:
                marker = _lock_path(directory, path).with_suffix(".created")
                if marker.exists():
                    with contextlib.suppress(OSError):
                        if os.path.isdir(path) and not os.path.islink(path):
                            os.rmdir(path)  # only if empty: never remove what someone put there
                        elif os.path.isfile(path) and os.path.getsize(path) == 0:
                            os.unlink(path)
                    if not os.path.lexists(path):
                        marker.unlink(missing_ok=True)
            finally:
                os.close(fd)

    @staticmethod
    def _lock(directory: Path, path: str, how: int) -> int:
        fd = os.open(_lock_path(directory, path), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, how)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @classmethod
    def _create(cls, directory: Path, path: Path, *, is_file: bool) -> None:
        """Create `path`, marked as podns's; agents create one at a time (so a path that exists
        by then was made by something else, and is not marked)."""
        lock = _lock_path(directory, str(path))
        fd = cls._lock(directory, str(path) + "\0create", fcntl.LOCK_EX)
        try:
            if os.path.lexists(path):
                return
            marker = lock.with_suffix(".created")
            marker.write_text(str(path) + "\n")  # first: a crash between the two leaves it removable
            try:
                if is_file:
                    with open(path, "x"):
                        pass
                else:
                    path.mkdir()
            except FileExistsError:  # made meanwhile by something that is not podns: not ours
                marker.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def _load(self) -> tuple[list[str], list[str]]:
        """(paths used, paths an older podns recorded as created by it)."""
        try:
            data = json.loads(self._state.read_text())
        except (OSError, ValueError):
            return [], []
        if not isinstance(data, dict):
            return [], []
        return ([str(p) for p in data.get("used", []) if isinstance(p, str)],
                [str(p) for p in data.get("created", []) if isinstance(p, str)])

    def _save(self) -> None:
        with contextlib.suppress(OSError):
            self._state.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"used": sorted(self._users)}))
            os.replace(tmp, self._state)
