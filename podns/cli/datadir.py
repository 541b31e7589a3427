"""The data dir of `podns up` and `podns apiserver`: its format file, and the checks made before
anything starts.

A data dir holds the store (`podns.db`), tokens, certificates, kubeconfigs and the node's pod
state. `podns-data.json` records which data format wrote it, so a podns that cannot read a
newer layout says so instead of misreading it. A data dir without the file (written before the
file existed, or empty) is adopted as the current format.

`lock` makes one `podns up` or `podns apiserver` the only user of a data dir (two would fight
over the store, the node's pod processes and addresses); the kernel drops the lock when the
process ends, however it ends. The lock file holds the holder's pid and command, named in the
error the next one gets. API servers of one cluster each have their own data dir (`--pki-from`
only reads the first one's CA and tokens), so they never contend for a lock.

The data dir holds every Secret (the store) and the cluster's credentials: it is created 0700,
and an existing one readable by others is tightened to 0700 with a warning (one owned by another
user is refused: its owner could read or replace what we write).

Every check fails with `DataDirError`, whose message is one line saying what is wrong and what
to do; the command prints it and exits non-zero.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from podns import __version__
from podns.objects.times import now_rfc3339

#: the layout this podns reads and writes; bump when an upgrade must migrate or refuse old dirs
DATA_FORMAT = 1
#: the format file, in the data dir
FORMAT_FILE = "podns-data.json"
#: held (flock) by the `podns up` or `podns apiserver` using the data dir; holds its pid and
#: command
LOCK_FILE = "podns-up.lock"

log = logging.getLogger(__name__)

#: the data dir's mode: the store (every Secret), tokens and keys are its owner's only
DIR_MODE = 0o700

#: lock file descriptors held by this process (closing one would release its lock)
_held: list[int] = []


class DataDirError(Exception):
    """The data dir cannot be used; the message says why and what to do."""


def prepare(path: Path) -> dict[str, Any]:
    """Create `path` if needed, check that it is writable and of a format this podns reads.

    Returns the format file's content (written now when missing). Raises DataDirError."""
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data dir {path} is a file, not a directory: pass another --data-dir")
    try:
        path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise DataDirError(f"cannot create data dir {path}: {exc.strerror or exc}; "
                           "pass a --data-dir you can write to") from None
    _check_owner(path)
    _check_writable(path)
    return _check_format(path)


def _check_owner(path: Path) -> None:
    uid = path.stat().st_uid
    if uid != os.geteuid():
        raise DataDirError(f"data dir {path} belongs to uid {uid}, not to this user (uid "
                           f"{os.geteuid()}): chown it, or pass another --data-dir")


def _owner_only(path: Path) -> None:
    """Tighten a data dir readable by others to DIR_MODE (once we hold it: a data dir refused
    for another reason is left as it was)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(DIR_MODE)
        except OSError as exc:
            raise DataDirError(f"data dir {path} is readable by others ({mode:04o}) and cannot be "
                               f"made {DIR_MODE:04o}: {exc.strerror or exc}") from None
        log.warning("data dir %s was %04o (it holds Secrets and credentials): now %04o", path, mode, DIR_MODE)


def _check_writable(path: Path) -> None:
    probe = path / f".podns-write-test-{os.getpid()}"
    try:
        with open(probe, "w") as f:
            f.write("ok")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(f"data dir {path} is not writable ({exc.strerror or exc}): fix its "
                           "permissions (chmod u+w) or pass another --data-dir") from None


def _check_format(path: Path) -> dict[str, Any]:
    file = path / FORMAT_FILE
    try:
        info = json.loads(file.read_text())
        if not isinstance(info, dict) or not isinstance(info.get("format"), int):
            raise ValueError("no integer 'format' field")
    except FileNotFoundError:
        info = {"format": DATA_FORMAT, "podnsVersion": __version__,
                "created": now_rfc3339()}
        tmp = file.with_name(FORMAT_FILE + ".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        os.replace(tmp, file)
        return info
    except (OSError, ValueError) as exc:
        raise DataDirError(f"data dir {path} has an unreadable {FORMAT_FILE} ({exc}): restore it "
                           "from a backup or pass another --data-dir") from None
    if info["format"] > DATA_FORMAT:
        raise DataDirError(
            f"data dir {path} was written by a newer podns ({info.get('podnsVersion', '?')}, data "
            f"format {info['format']}); this is podns {__version__} (data format {DATA_FORMAT}): "
            "upgrade podns, or pass another --data-dir")
    return info


def lock(path: Path, command: str = "podns up") -> None:
    """Hold the data dir's lock until this process exits, as `command` (`podns up`, `podns
    apiserver`); DataDirError naming the holder when another process holds it."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid, _, holder = os.pread(fd, 128, 0).decode(errors="replace").strip().partition(" ")
        os.close(fd)
        # a lock file with only a pid was written by a podns up before the command was recorded
        raise DataDirError(f"data dir {path} is in use by another {holder or 'podns up'} (pid "
                           f"{pid or '?'}): stop that one, or pass another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
    _held.append(fd)
    _owner_only(path)
