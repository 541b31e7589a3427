"""The SQLite store's files hold every Secret: only their owner may read them (0600), whatever
the umask, including files an older podns left world-readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from podns.store.sqlite import SQLiteStore


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode)
            for p in directory.iterdir() if p.name.startswith("podns.db")}


async def test_store_files_are_created_owner_only(tmp_path: Path) -> None:
    """given umask 022, a new store's database, WAL, shared-memory and lock files are 0600."""
    old = os.umask(0o022)
    try:
        store = SQLiteStore(tmp_path / "podns.db")
        await store.create("/registry/secrets/default/s", {"kind": "Secret", "data": {"k": "dg=="}})
    finally:
        os.umask(old)
    try:
        modes = _modes(tmp_path)
        assert {"podns.db", "podns.db-wal", "podns.db-shm"} <= set(modes)
        assert set(modes.values()) == {0o600}, modes
    finally:
        await store.close()


async def test_world_readable_store_files_are_tightened(tmp_path: Path) -> None:
    """given a store whose files an older podns left 0644, opening it makes them 0600."""
    store = SQLiteStore(tmp_path / "podns.db")
    await store.create("/registry/secrets/default/s", {"kind": "Secret"})
    await store.close()
    for name in _modes(tmp_path):
        os.chmod(tmp_path / name, 0o644)
    store = SQLiteStore(tmp_path / "podns.db")
    try:
        assert set(_modes(tmp_path).values()) == {0o600}, _modes(tmp_path)
    finally:
        await store.close()
