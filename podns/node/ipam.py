"""Pod IP address management: one address per pod from the node's pod CIDR, persisted.

In loopback mode (the default) the pod CIDR is a slice of 127.0.0.0/8: Linux routes all of it to
`lo`, so any process may bind any 127.x address without root, and each pod gets its own address
(`status.podIP`) that clients connect to directly. In namespace mode the same allocator hands out
addresses on the node bridge's subnet.

Allocations are keyed by pod UID and written to a small JSON file in the data dir, atomically, on
every change, so that an agent restarted with the same data dir gives a pod the address it had
("same IPs where free"). The allocator never talks to the API and never raises anything but
`IPRangeExhausted` (a value the agent turns into a pod status and an event).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

#: 127.1.0.0/16: clear of 127.0.0.1 (the host's own services) and of the service CIDR defaults;
#: 65k pods is far beyond what one node runs.
DEFAULT_POD_CIDR = "127.1.0.0/16"


#: where root's agents keep machine-wide claims and namespace-mode records: root-owned, 0700,
#: never a shared, predictable /tmp path that another user could create first (and fill with
#: symlinks for root to write through)
RUN_DIR = Path("/run/podns")
#: where podns before /run/podns kept them; its lock files are still probed (read-only, never
#: created or written) so that agents of an older podns running now keep their CIDRs
LEGACY_DIR = Path("/tmp/podns-podcidr")


Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the lock dir's machine-wide mutex: taken (briefly) by every claim and by every agent removing
#: what a dead agent left, so that "is anyone holding this range?" and the act that follows are
#: one step for every other agent (see `claims_locked`)
MUTEX = "claims.lock"


class LockDirError(Exception):
    """The lock dir is not private to this user (owner, mode, or a symlink); the message is one line."""


def lock_dir() -> Path:
    """Where machine-wide pod CIDR claims (and namespace-mode records) live, made if missing and
    checked private to this user (LockDirError otherwise): $PODNS_LOCK_DIR (tests), /run/podns
    as root, else $XDG_RUNTIME_DIR/podns or /tmp/podns-<uid>."""
    if os.environ.get("PODNS_LOCK_DIR"):
        path = Path(os.environ["PODNS_LOCK_DIR"])
    elif os.geteuid() == 0:
        path = RUN_DIR
    elif os.environ.get("XDG_RUNTIME_DIR"):
        path = Path(os.environ["XDG_RUNTIME_DIR"]) / "podns"
    else:
        path = Path("/tmp") / f"podns-{os.geteuid()}"
    return private_dir(path)


def private_dir(path: Path) -> Path:
    """`path`, created 0700 if missing; LockDirError unless it is a real directory (not a
    symlink) owned by this user with no access for group or others."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, 0o700)
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise LockDirError(f"lock dir {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise LockDirError(f"lock dir {path} is not a directory (a symlink?): remove it and start again")
    if st.st_uid != os.geteuid():
        raise LockDirError(f"lock dir {path} belongs to uid {st.st_uid}, not to this user (uid "
                           f"{os.geteuid()}): remove it and start again")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise LockDirError(f"lock dir {path} is open to others ({stat.S_IMODE(st.st_mode):04o}, "
                           "must be 0700): remove it or chmod 0700 it")
    return path


def write_record(directory: Path, name: str, text: str) -> None:
    """Write `<directory>/<name>` (made private with `private_dir`) holding `text`: a new file
    renamed over any old one, so never written through a symlink someone put there."""
    path = private_dir(directory)
    tmp = path / f".{name}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path / name)


def legacy_claim_held(cidr: str) -> bool:
    """True when an agent of an older podns holds `cidr` in LEGACY_DIR."""
    return claim_held(LEGACY_DIR / lock_name(cidr))


def claim_held(path: Path, *, shared: bool = False) -> bool:
    """True when a running agent holds the claim file `path` (probed read-only: opened without
    following symlinks, never created, never written; a shared flock is refused while an agent
    holds its exclusive one). `shared`: holders take shared flocks (several agents of one
    cluster share a service CIDR claim), so the probe is an exclusive one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if shared else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops our probe lock, if we got it
    return False


def lock_name(cidr: str) -> str:
    """The claim file's name for `cidr` (`10.244.0.0_24.lock`)."""
    return cidr.replace("/", "_") + ".lock"


@contextlib.contextmanager
def claims_locked() -> Iterator[Path]:
    """Hold the lock dir's mutex (blocking: others hold it for a few probes, or while they remove
    a dead agent's bridge and tables); yields the lock dir. Every claim is taken under it, and
    every agent that judges a range abandoned (no flock held) and removes what was left of it
    does both under it, so no claim can slip in between the judgement and the removal. Not
    re-entrant: code holding it uses the plain probes (`claim_held`). LockDirError as
    `lock_dir`."""
    directory = lock_dir()
    fd = os.open(directory / MUTEX, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield directory
    finally:
        os.close(fd)


def claimed_ranges(directory: Path) -> Iterator[tuple[Network, Path, bool]]:
    """Every claim file of the lock dir as (range, path, is a service range): pod CIDR claims
    (`<cidr>.lock`) and service CIDR claims (`svc-<cluster>-<cidr>.lock`); whether each is held
    is for the caller to probe (`claim_held`, `shared=True` for service ranges)."""
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".lock") or name == MUTEX:
            continue
        service = name.startswith("svc-")
        text = name[:-len(".lock")].split("-", 2)[-1] if service else name[:-len(".lock")]
        try:
            yield ipaddress.ip_network(text.replace("_", "/"), strict=False), directory / name, service
        except ValueError:
            continue


class CIDRClaim:
    """A machine-wide claim on a pod CIDR, so that agents of *different* clusters on one machine
    (loopback mode shares 127/8 between them; namespace mode names bridges after the CIDR) never
    hand out the same addresses, nor overlapping ones.

    The claim is an flock on `<lock dir>/<cidr>.lock`, held while this object lives: the
    kernel drops it when the process dies, so a crashed agent never blocks a CIDR. It is taken
    under the lock dir's mutex (`claims_locked`) after checking that no held claim overlaps
    `cidr`: another agent's pod CIDR of another size (10.244.0.0/23 against 10.244.1.0/24), or a
    service range some cluster's agent NATs here (its ClusterIPs would shadow the pods). A CIDR
    an older podns's agent holds in LEGACY_DIR is not free either. `why` says why the last
    `try_claim` failed.
    """

    def __init__(self) -> None:
        self._fd: int | None = None
        self.cidr: str | None = None
        self.why = ""

    def try_claim(self, cidr: str) -> bool:
        """Claim `cidr` (releasing any previous claim); False if another process holds it or an
        overlapping range (then `why` says which). LockDirError when the lock dir is not private
        to this user."""
        net = ipaddress.ip_network(cidr, strict=False)
        with claims_locked() as directory:
            if legacy_claim_held(cidr):
                self.why = f"pod CIDR {cidr} is held by an agent of an older podns on this machine"
                return False
            own = directory / lock_name(cidr)
            for other, path, service in claimed_ranges(directory):
                if path == own or other.version != net.version or not other.overlaps(net):
                    continue
                if claim_held(path, shared=service):
                    what = "service CIDR" if service else "pod CIDR"
                    self.why = (f"pod CIDR {cidr} overlaps {what} {other}, held by a node agent "
                                "(of another cluster) on this machine")
                    return False
            flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(own, flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                self.why = f"pod CIDR {cidr} is in use by another agent on this machine"
                return False
        self.release()
        self._fd, self.cidr, self.why = fd, cidr, ""
        return True

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = self.cidr = None


class IPRangeExhausted(Exception):
    """Every address of the node's pod CIDR is in use."""


class IPAM:
    """Allocate and release pod addresses from `cidr`; persist to `state_file` (None = memory only).

    The first usable address is skipped (kept for the gateway/bridge in namespace mode), and for
    IPv4 networks the network and broadcast addresses are never handed out.
    """

    def __init__(self, cidr: str = DEFAULT_POD_CIDR, state_file: Path | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self.state_file = state_file
        self._by_uid: dict[str, str] = {}
        self._used: set[str] = set()
        self._cursor = 0
        if state_file is not None and state_file.exists():
            self._load(state_file)

    @property
    def gateway(self) -> str:
        """The reserved first address (the bridge's address in namespace mode)."""
        return str(self.network.network_address + 1)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return  # a torn or foreign file: start empty rather than refuse to run
        for uid, ip in dict(data.get("allocations", {})).items():
            if self._usable(ip) and ip not in self._used:
                self._by_uid[str(uid)] = ip
                self._used.add(ip)

    def _save(self) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"cidr": str(self.network), "allocations": self._by_uid}, indent=1))
        os.replace(tmp, self.state_file)

    def _usable(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr not in self.network or addr == self.network.network_address + 1:
            return False
        if self.network.version == 4 and self.network.num_addresses > 2:
            return addr not in (self.network.network_address, self.network.broadcast_address)
        return addr != self.network.network_address

    def get(self, uid: str) -> str | None:
        """The address currently held by pod `uid`, if any."""
        return self._by_uid.get(uid)

    def allocations(self) -> dict[str, str]:
        """A copy of uid -> address."""
        return dict(self._by_uid)

    def allocate(self, uid: str, preferred: str | None = None) -> str:
        """Return pod `uid`'s address, allocating one if it has none.

        `preferred` (e.g. the pod's previous `status.podIP`) is taken when usable and free.
        Raises `IPRangeExhausted` when no address is free.
        """
        if uid in self._by_uid:
            return self._by_uid[uid]
        if preferred and self._usable(preferred) and preferred not in self._used:
            return self._take(uid, preferred)
        size = self.network.num_addresses
        base = int(self.network.network_address)
        for step in range(size):
            offset = (self._cursor + step) % size
            ip = str(ipaddress.ip_address(base + offset))
            if ip not in self._used and self._usable(ip):
                self._cursor = (offset + 1) % size
                return self._take(uid, ip)
        raise IPRangeExhausted(f"no free address in pod CIDR {self.network} ({len(self._used)} in use)")

    def _take(self, uid: str, ip: str) -> str:
        self._by_uid[uid] = ip
        self._used.add(ip)
        self._save()
        return ip

    def release(self, uid: str) -> None:
        """Free pod `uid`'s address (no-op when it holds none)."""
        ip = self._by_uid.pop(uid, None)
        if ip is not None:
            self._used.discard(ip)
            self._save()

    def retain_only(self, uids: set[str]) -> None:
        """Release every allocation whose pod is not in `uids` (garbage collection after a relist)."""
        stale = [uid for uid in self._by_uid if uid not in uids]
        for uid in stale:
            ip = self._by_uid.pop(uid)
            self._used.discard(ip)
        if stale:
            self._save()
