"""`open_store(url)`: the backend each URL names, and clear errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.store import open_store
from podns.store.errors import Unavailable
from podns.store.etcd import EtcdStore
from podns.store.memory import MemoryStore
from podns.store.sqlite import SQLiteStore
from tests.etcd_cluster import EtcdCluster
from tests.store.conformance import pod


@pytest.mark.parametrize("form", ["url", "plain"], ids=["sqlite-url", "plain-path"])
async def test_sqlite_urls(tmp_path: Path, form: str) -> None:
    """given a sqlite URL or a plain path, open_store opens that file."""
    path = tmp_path / "s.db"
    store = open_store(f"sqlite://{path}" if form == "url" else str(path))
    try:
        assert isinstance(store, SQLiteStore)
        await store.create("pods/default/a", pod("a"))
    finally:
        await store.close()
    assert path.exists()


async def test_memory_url() -> None:
    """given memory://, open_store returns a fresh in-memory store."""
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.close()


async def test_etcd_url(etcd1: EtcdCluster) -> None:
    """given etcd://h:p,..., open_store returns an EtcdStore talking to those members."""
    store = open_store(etcd1.url)
    try:
        assert isinstance(store, EtcdStore)
        assert await store.current_rv() >= 1
    finally:
        await store.close()


@pytest.mark.parametrize("url", ["mysql://x", "etcd://", "sqlite://"])
def test_bad_urls(url: str) -> None:
    """given an unknown scheme or a URL naming nothing, a ValueError says what is wrong."""
    with pytest.raises(ValueError, match="store URL"):
        open_store(url)


def test_unopenable_file(tmp_path: Path) -> None:
    """given a path inside a missing directory, opening raises Unavailable, not sqlite3.Error."""
    with pytest.raises(Unavailable):
        open_store(str(tmp_path / "missing" / "s.db"))


async def test_not_a_database(tmp_path: Path) -> None:
    """given a file that is not SQLite, opening raises Unavailable and releases the file."""
    bad = tmp_path / "s.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(Unavailable):
        open_store(str(bad))
    bad.unlink()
    store = open_store(str(bad))  # the lock was released
    assert isinstance(store, SQLiteStore)
    await store.close()
