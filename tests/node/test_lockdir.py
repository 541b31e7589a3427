"""The lock dir of machine-wide pod CIDR claims and namespace-mode records: private to its user
(root's is /run/podns, 0700), refused with one line when anyone else could plant files in it,
written without following symlinks; claims of an older podns (in /tmp/podns-podcidr) still
count, so a CIDR in use on this machine is never handed out twice."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from podns.node import ipam, netns
from podns.node.ipam import CIDRClaim, LockDirError


@pytest.mark.skipif(os.geteuid() != 0, reason="/run/podns is root's lock dir")
def test_root_uses_a_private_run_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    """as root without PODNS_LOCK_DIR, the lock dir is /run/podns, root-owned and 0700."""
    monkeypatch.delenv("PODNS_LOCK_DIR", raising=False)
    path = ipam.lock_dir()
    st = os.lstat(path)
    assert path == Path("/run/podns")
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and stat.S_IMODE(st.st_mode) & 0o077 == 0


@pytest.mark.parametrize("make", ["open-mode", "symlink"])
def test_a_lock_dir_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                make: str) -> None:
    """given a lock dir that is world-writable, or a symlink (someone made it first), claiming a
    CIDR is refused with a one-line error and nothing is created in it."""
    target = tmp_path / "locks"
    if make == "open-mode":
        target.mkdir()
        target.chmod(0o777)
        path = target
    else:
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        target.symlink_to(tmp_path / "elsewhere")
        path = target
    monkeypatch.setenv("PODNS_LOCK_DIR", str(path))
    with pytest.raises(LockDirError) as err:
        CIDRClaim().try_claim("127.1.0.0/16")
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert not list((tmp_path / "elsewhere").iterdir()) if make == "symlink" else not list(target.iterdir())


def test_records_replace_a_planted_symlink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """given a symlink where a namespace record goes, recording writes a new file and leaves the
    symlink's target alone."""
    monkeypatch.setenv("PODNS_LOCK_DIR", str(tmp_path / "locks"))
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    records = ipam.lock_dir() / "netns"
    records.mkdir(mode=0o700)
    (records / "podns-0a1b2c3d").symlink_to(victim)
    netns._record("podns-0a1b2c3d", "10.244.9.0/24")
    assert victim.read_text() == "untouched"
    assert netns.recorded_cidr("podns-0a1b2c3d") == "10.244.9.0/24"


def test_a_cidr_an_older_podns_holds_is_not_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """given an older podns's agent holding 10.244.0.0/24 in the old shared dir, a new agent does
    not claim it and takes the next one; the old dir is only read."""
    legacy = tmp_path / "podns-podcidr"
    legacy.mkdir()
    monkeypatch.setattr(ipam, "LEGACY_DIR", legacy)
    monkeypatch.setenv("PODNS_LOCK_DIR", str(tmp_path / "locks"))
    with open(legacy / "10.244.0.0_24.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        claim = CIDRClaim()
        assert netns.choose_cidr([], "n", claim.try_claim, []) == "10.244.1.0/24"
    assert sorted(p.name for p in legacy.iterdir()) == ["10.244.0.0_24.lock"]
    assert CIDRClaim().try_claim("10.244.0.0/24")  # released by the old agent: free again
