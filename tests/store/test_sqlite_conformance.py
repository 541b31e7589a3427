"""The store conformance suite on the SQLite backend (a file in a temp dir) and on memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from podns.store.interface import Store
from podns.store.memory import MemoryStore
from podns.store.sqlite import SQLiteStore
from tests.store.conformance import StoreConformance, StoreFactory

pytestmark = pytest.mark.timeout(60)


class TestSQLite(StoreConformance):
    durable = True

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        async def open_(**options: Any) -> Store:
            return SQLiteStore(tmp_path / "store.db", **options)

        return open_


class TestMemory(StoreConformance):
    durable = False

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        async def open_(**options: Any) -> Store:
            return MemoryStore(**options)

        return open_
