"""The in-memory store: the SQLite backend on `:memory:`, for fast tests of other packages.

Same semantics as `SQLiteStore` (it is the same code, so it passes the same conformance suite)
without durability: everything is gone when the store is closed.
"""

from __future__ import annotations

from podns.store.sqlite import SQLiteStore
from podns.store.watchcache import DEFAULT_CAPACITY, DEFAULT_QUEUE_SIZE


class MemoryStore(SQLiteStore):
    """A `Store` that lives only in this process's memory."""

    def __init__(
        self,
        *,
        watch_capacity: int = DEFAULT_CAPACITY,
        watch_queue_size: int = DEFAULT_QUEUE_SIZE,
        history: int = DEFAULT_CAPACITY,
    ) -> None:
        super().__init__(
            ":memory:", watch_capacity=watch_capacity, watch_queue_size=watch_queue_size, history=history
        )
