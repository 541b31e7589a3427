"""The data dir's own mode: it holds the store, tokens and keys, so it is 0700, and an existing
one with looser modes is tightened (with a warning) at start-up."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from podns.cli import datadir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_data_dir_is_owner_only(tmp_path: Path) -> None:
    """given no data dir, prepare creates it 0700."""
    datadir.prepare(tmp_path / "state")
    assert _mode(tmp_path / "state") == 0o700


def test_loose_data_dir_is_tightened_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """given an existing data dir at 0755, taking it (prepare, then lock) makes it 0700 and says so."""
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        datadir.prepare(state)
        datadir.lock(state, "podns test")
    assert _mode(state) == 0o700
    assert "0755" in caplog.text and "0700" in caplog.text
