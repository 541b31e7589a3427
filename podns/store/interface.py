"""The Store protocol: durable objects with one global resourceVersion and watch.

Every backend (SQLite embedded, etcd distributed, in-memory for tests) implements exactly this
contract, and `tests/store/conformance.py` holds the one conformance suite they all must pass.
Only `podns.api` (and `podns.cli`, which picks a backend) may import this package.

Keys are plain strings `<resource>/<namespace>/<name>` for namespaced objects and
`<resource>/<name>` for cluster-scoped ones, where `<resource>` is the API group-qualified
plural (`pods`, `services`, `statefulsets.apps`, `endpointslices.discovery.k8s.io`). Listing or
watching a prefix (`pods/`, `pods/default/`) selects a subtree; prefixes always end in `/`
or are a full key.

Values are JSON-able dicts (Kubernetes objects). The store owns `metadata.resourceVersion`:
it sets it on every object it returns (as a decimal string) and ignores whatever the caller
put there. Revisions are one monotonically increasing integer across the whole store (as
etcd's revision), so a List's version orders it against every watch event.

Errors (all from `podns.store.errors`, a hierarchy rooted at `StoreError`):
- `NotFound` for get/update/delete of a missing key;
- `AlreadyExists` for create of an existing key;
- `Conflict` when `expected_rv` does not match the current modification revision;
- `Expired` (HTTP 410) when a watch asks for a revision older than the history kept;
- `Unavailable` when the backend cannot be reached (HTTP 503 upstream) — never a raw
  sqlite3/etcd/HTTP exception.
A write that returned normally is durable: it survives SIGKILL of the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change: `object` carries its new resourceVersion (for DELETED: the deletion's)."""

    type: EventType
    key: str
    object: Obj
    rv: int


class WatchStream(Protocol):
    """What `Store.watch` returns: an async iterator of events that its reader closes
    (`aclose`) when done, so the store drops the watcher at once. Not an async generator: a
    cancelled pending `__anext__` (a bookmark timer) must leave the watch intact."""

    def __aiter__(self) -> WatchStream: ...

    async def __anext__(self) -> WatchEvent:
        """The next event; StopAsyncIteration once the watch is closed."""
        ...

    async def aclose(self) -> None:
        """Stop the watch; idempotent."""
        ...


@dataclass(frozen=True, slots=True)
class ListResult:
    """A consistent snapshot of a prefix at revision `rv`.

    `continue_key` is the last key returned when `limit` cut the list short (pass it back as
    `start_after` with the same `at_rv`), else None.
    """

    items: list[Obj]
    rv: int
    continue_key: str | None = None


class Store(Protocol):
    """Durable, revisioned object storage with compare-and-swap and watch."""

    async def get(self, key: str) -> Obj:
        """The current object. Raises NotFound."""
        ...

    async def list(
        self,
        prefix: str,
        *,
        limit: int | None = None,
        start_after: str | None = None,
        at_rv: int | None = None,
    ) -> ListResult:
        """Objects under `prefix` ordered by key. `at_rv` asks for a continued list to be read at
        the same revision as its first page; if that revision has been compacted, raises Expired.
        `at_rv` None or 0 (or beyond the store's revision) reads the current state.
        """
        ...

    async def create(self, key: str, obj: Obj) -> Obj:
        """Store a new object; returns it with its resourceVersion. Raises AlreadyExists."""
        ...

    async def update(self, key: str, obj: Obj, *, expected_rv: int | None = None) -> Obj:
        """Replace an existing object. With `expected_rv`, only if its current revision equals
        it (compare-and-swap), else Conflict. Raises NotFound. An update to identical content
        writes nothing and returns the stored object with its unchanged revision."""
        ...

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Obj:
        """Remove an object; returns its last state carrying the deletion's revision.
        Raises NotFound, Conflict (with `expected_rv`)."""
        ...

    def watch(self, prefix: str, from_rv: int) -> WatchStream:
        """Every change under `prefix` with revision > `from_rv`, in revision order, then live
        changes until the iterator is closed (`aclose`). Raises Expired (on first iteration) when
        `from_rv` is older than the history the store keeps."""
        ...

    async def current_rv(self) -> int:
        """The store's latest revision."""
        ...

    async def compact(self, rv: int) -> None:
        """Forget history up to `rv`; watches from older revisions then get Expired."""
        ...

    async def close(self) -> None:
        """Release connections and background tasks."""
        ...
