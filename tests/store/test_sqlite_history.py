"""Bounded history of the SQLite store: the watch ring and the on-disk revision log."""

from __future__ import annotations

from pathlib import Path

import pytest

from podns.store.errors import Expired
from podns.store.sqlite import TRIM_EVERY, SQLiteStore
from tests.store.conformance import pod, rv_of, take


async def test_watch_older_than_ring_is_expired(tmp_path: Path) -> None:
    """given a ring of 10 events, a watch from 11 writes ago is Expired, from 10 it replays."""
    store = SQLiteStore(tmp_path / "s.db", watch_capacity=10)
    try:
        start = await store.current_rv()
        for i in range(11):
            await store.create(f"pods/default/p{i}", pod(f"p{i}"))
        with pytest.raises(Expired):
            await take(store.watch("pods/", start), 1)
        got = await take(store.watch("pods/", start + 1), 10)
        assert [e.key for e in got] == [f"pods/default/p{i}" for i in range(1, 11)]
    finally:
        await store.close()


async def test_log_is_trimmed_to_history(tmp_path: Path) -> None:
    """given history=100, after TRIM_EVERY writes a list at an early revision is Expired while
    one within the last 100 revisions still works."""
    store = SQLiteStore(tmp_path / "s.db", history=100)
    try:
        first = await store.create("pods/default/a", pod("a", v=0))
        for i in range(TRIM_EVERY):
            await store.update("pods/default/a", pod("a", v=i + 1))
        with pytest.raises(Expired):
            await store.list("pods/", at_rv=rv_of(first))
        recent = await store.current_rv() - 50
        res = await store.list("pods/", at_rv=recent)
        assert res.items[0]["spec"]["v"] == recent - rv_of(first)
    finally:
        await store.close()

