"""Credentials files (tokens, CA and serving keys, kubeconfigs, the CA and tokens `--pki-from`
copies) are created with their final mode, 0600, through a new file that nothing else could have
prepared: never through a symlink or a leftover temp file, never readable for a moment."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from podns.api.server.authentication import write_private
from podns.cli.apiserver import SHARED_FILES, share_pki


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_write_private_does_not_follow_a_planted_temp_symlink(tmp_path: Path) -> None:
    """given `tokens.json.tmp` planted as a symlink to another file, writing tokens leaves that
    file alone and makes tokens.json a 0600 file."""
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "tokens.json.tmp").symlink_to(victim)
    write_private(tmp_path / "tokens.json", '{"admin": "secret"}')
    assert victim.read_text() == "untouched"
    assert (tmp_path / "tokens.json").read_text() == '{"admin": "secret"}'
    assert _mode(tmp_path / "tokens.json") == 0o600


def test_write_private_does_not_reuse_a_readable_temp_file(tmp_path: Path) -> None:
    """given a leftover world-readable `ca.key.tmp` (an old crash, or someone else's), the key is
    still written 0600 (O_TRUNC on an existing file would keep its 0644)."""
    leftover = tmp_path / "ca.key.tmp"
    leftover.write_text("old")
    leftover.chmod(0o644)
    write_private(tmp_path / "ca.key", "KEY")
    assert _mode(tmp_path / "ca.key") == 0o600


def test_pki_from_copies_are_private_from_the_first_byte(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """given umask 000 and a copy interrupted before any later chmod (chmod does nothing here),
    the CA key and tokens copied by --pki-from are already 0600."""
    source = tmp_path / "first"
    source.mkdir()
    for name in SHARED_FILES:
        (source / name).write_text(f"content of {name}")
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old = os.umask(0)
    try:
        share_pki(source, tmp_path / "second")
    finally:
        os.umask(old)
    for name in SHARED_FILES:
        assert (tmp_path / "second" / name).read_text() == f"content of {name}"
        assert _mode(tmp_path / "second" / name) == 0o600, name
