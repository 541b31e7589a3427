"""The embedded store: one SQLite file in WAL mode, with a watch cache in memory.

Schema (see docs/store.md for the reasoning):

- `kv(key, value, mod_rv)`: the current objects, values as JSON (orjson) carrying their own
  `metadata.resourceVersion` (= `mod_rv`);
- `log(rv, key, prev)`: one row per write since the last compaction, holding the *previous*
  value of the key (NULL when the write created it). The state at a past revision `R` is the
  current state with, for each key changed after `R`, the `prev` of its first change after
  `R`; that is how a paginated list continues at its first page's revision;
- `meta(name, value)`: `rev`, the global revision (persisted in every write's transaction, so it
  never goes back, even after deletes), and `floor`, the oldest revision `log` can rebuild.

Durability: WAL with `synchronous=NORMAL`. A commit appends to the WAL file with `write(2)`
before returning, so a returned write survives SIGKILL of the process (the OS holds the
page cache); only power loss or a kernel crash can lose the last commits before a checkpoint.

Concurrency: one process owns the file (an advisory lock on `<path>-lock`); all statements run
synchronously on the event loop. Each is a primary-key lookup or a short write transaction
measured in tens of microseconds (bench/store_throughput.py), cheaper than a hop to a thread,
and running them in loop order makes revisions and watch events trivially ordered.

Only this module imports sqlite3; its errors become `Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator

import orjson

from podns.store._common import decode_many, encode, prefix_range, with_rv
from podns.store.errors import AlreadyExists, Conflict, Expired, NotFound, StoreError, Unavailable
from podns.store.interface import ListResult, Obj, WatchEvent, WatchStream
from podns.store.watchcache import DEFAULT_CAPACITY, DEFAULT_QUEUE_SIZE, WatchCache

#: writes between automatic trims of the `log` table
TRIM_EVERY = 1000
#: writes between WAL checkpoints (SQLite's default autocheckpoint is 1000 pages, about as many
#: small writes; a checkpoint fsyncs, which takes milliseconds on a disk, so it runs in a thread)
CHECKPOINT_EVERY = 1000
#: bytes the WAL file is truncated to after a checkpoint (it is reused from its start)
WAL_SIZE_LIMIT = 64 * 1024 * 1024
#: WAL size above which a checkpoint holds writers back briefly to finish (see
#: `_checkpoint_cycle`); below it, writers are never held
WAL_GATE_BYTES = 32 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, mod_rv INTEGER NOT NULL)
    WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (rv INTEGER PRIMARY KEY, key TEXT NOT NULL, prev BLOB);
CREATE INDEX IF NOT EXISTS log_key_rv ON log (key, rv);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('rev', 0), ('floor', 0);
"""

# The state of a prefix at a past revision: unchanged current rows plus the pre-images of rows
# changed since. Parameters: lo, hi, after, at, limit.
_LIST_AT = """
SELECT key, value FROM (
    SELECT k.key AS key, k.value AS value FROM kv k
    WHERE k.key >= :lo AND k.key < :hi AND k.key > :after
      AND NOT EXISTS (SELECT 1 FROM log g WHERE g.key = k.key AND g.rv > :at)
    UNION ALL
    SELECT l.key AS key, l.prev AS value FROM log l
    WHERE l.rv > :at AND l.key >= :lo AND l.key < :hi AND l.key > :after AND l.prev IS NOT NULL
      AND l.rv = (SELECT MIN(g.rv) FROM log g WHERE g.key = l.key AND g.rv > :at)
) ORDER BY key LIMIT :limit
"""

_loads = orjson.loads


class SQLiteStore:
    """`Store` over a SQLite file (or `:memory:`). See the module doc for the design."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        watch_capacity: int = DEFAULT_CAPACITY,
        watch_queue_size: int = DEFAULT_QUEUE_SIZE,
        history: int = DEFAULT_CAPACITY,
    ) -> None:
        """Open (creating if needed) the database at `path`.

        `watch_capacity`: events kept in memory for watches from past revisions;
        `watch_queue_size`: events a watcher may lag before it gets Expired;
        `history`: revisions kept in `log` for lists at a past revision (trimmed every
        TRIM_EVERY writes). Raises Unavailable if the file cannot be opened or is in use.
        """
        self._path = os.fspath(path)
        self._history = history
        self._lock_fd: int | None = None
        db: sqlite3.Connection | None = None
        try:
            if self._path != ":memory:":
                self._lock_fd = _lock(self._path + "-lock")
                _owner_only(self._path)
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            # Checkpoints (the only fsyncs) run in a worker thread, off the event loop.
            db.execute("PRAGMA wal_autocheckpoint=0")
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            db.executescript(_SCHEMA)
            self._rev: int = db.execute("SELECT value FROM meta WHERE name='rev'").fetchone()[0]
            self._floor: int = db.execute("SELECT value FROM meta WHERE name='floor'").fetchone()[0]
        except (sqlite3.Error, OSError) as exc:
            if db is not None:
                db.close()
            self._unlock()
            raise Unavailable(f"opening SQLite store {self._path}: {exc}") from exc
        self._db = db
        self._writes = 0
        self._checkpoint_due = CHECKPOINT_EVERY
        self._checkpointing: asyncio.Future[None] | None = None
        #: set while writers must wait for the end of a checkpoint
        self._gate: asyncio.Future[None] | None = None
        self._closed = False
        self._cache = WatchCache(self._rev, capacity=watch_capacity, queue_size=watch_queue_size)

    # -- reads ---------------------------------------------------------------------------------

    async def get(self, key: str) -> Obj:
        with self._errors(f"getting {key}"):
            row = self._db.execute("SELECT value FROM kv WHERE key=?", (key,)).fetchone()
        if row is None:
            raise NotFound(key)
        obj: Obj = _loads(row[0])
        return obj

    async def list(
        self,
        prefix: str,
        *,
        limit: int | None = None,
        start_after: str | None = None,
        at_rv: int | None = None,
    ) -> ListResult:
        lo, hi = prefix_range(prefix)
        after = start_after if start_after is not None else ""
        n = -1 if limit is None or limit <= 0 else limit + 1
        with self._errors(f"listing {prefix}"):
            if not at_rv or at_rv >= self._rev:  # 0 = no particular revision
                rv = self._rev
                rows = self._db.execute(
                    "SELECT key, value FROM kv WHERE key >= ? AND key < ? AND key > ? "
                    "ORDER BY key LIMIT ?",
                    (lo, hi, after, n),
                ).fetchall()
            else:
                if at_rv < self._floor:
                    raise Expired(f"too old resource version: {at_rv} ({self._floor})")
                rv = at_rv
                rows = self._db.execute(
                    _LIST_AT, {"lo": lo, "hi": hi, "after": after, "at": at_rv, "limit": n}
                ).fetchall()
        cont = None
        if n > 0 and len(rows) == n:
            rows.pop()
            cont = rows[-1][0]
        return ListResult(items=decode_many((v for _, v in rows), _loads), rv=rv, continue_key=cont)

    async def current_rv(self) -> int:
        return self._rev

    # -- writes --------------------------------------------------------------------------------

    async def create(self, key: str, obj: Obj) -> Obj:
        while self._gate is not None:
            await self._gate
        rv = self._rev + 1
        out = with_rv(obj, rv)
        data = encode(key, out)
        db = self._db
        with self._errors(f"creating {key}"):
            with self._txn():
                try:
                    db.execute("INSERT INTO kv VALUES (?, ?, ?)", (key, data, rv))
                except sqlite3.IntegrityError:
                    raise AlreadyExists(key) from None
                db.execute("INSERT INTO log VALUES (?, ?, NULL)", (rv, key))
                db.execute("UPDATE meta SET value=? WHERE name='rev'", (rv,))
        await self._committed(WatchEvent("ADDED", key, _loads(data), rv))
        return out

    async def update(self, key: str, obj: Obj, *, expected_rv: int | None = None) -> Obj:
        while self._gate is not None:
            await self._gate
        db = self._db
        with self._errors(f"updating {key}"):
            old, old_rv = self._current(key, expected_rv)
            # A write that changes nothing keeps the object's revision (as Kubernetes does), so
            # no-op status updates do not wake every watcher.
            if encode(key, with_rv(obj, old_rv)) == old:
                unchanged: Obj = _loads(old)
                return unchanged
            rv = self._rev + 1
            out = with_rv(obj, rv)
            data = encode(key, out)
            with self._txn():
                db.execute("UPDATE kv SET value=?, mod_rv=? WHERE key=?", (data, rv, key))
                db.execute("INSERT INTO log VALUES (?, ?, ?)", (rv, key, old))
                db.execute("UPDATE meta SET value=? WHERE name='rev'", (rv,))
        await self._committed(WatchEvent("MODIFIED", key, _loads(data), rv))
        return out

    async def delete(self, key: str, *, expected_rv: int | None = None) -> Obj:
        while self._gate is not None:
            await self._gate
        db = self._db
        with self._errors(f"deleting {key}"):
            old, _ = self._current(key, expected_rv)
            rv = self._rev + 1
            with self._txn():
                db.execute("DELETE FROM kv WHERE key=?", (key,))
                db.execute("INSERT INTO log VALUES (?, ?, ?)", (rv, key, old))
                db.execute("UPDATE meta SET value=? WHERE name='rev'", (rv,))
        await self._committed(WatchEvent("DELETED", key, with_rv(_loads(old), rv), rv))
        return with_rv(_loads(old), rv)

    def _current(self, key: str, expected_rv: int | None) -> tuple[bytes, int]:
        """The stored value and modification revision of `key`, for an update or delete.
        Raises NotFound, or Conflict when `expected_rv` is given and is not the current one."""
        row = self._db.execute("SELECT value, mod_rv FROM kv WHERE key=?", (key,)).fetchone()
        if row is None:
            raise NotFound(key)
        old, old_rv = row
        if expected_rv is not None and expected_rv != old_rv:
            raise Conflict(f"{key}: resourceVersion {expected_rv} is stale (now {old_rv})")
        return old, old_rv

    async def _committed(self, event: WatchEvent) -> None:
        """Publish a committed write; then yield to the loop so watchers drain as writers go
        (a burst of writes from one task would otherwise overrun every watcher's queue)."""
        self._rev = event.rv
        self._cache.append(event)
        self._writes += 1
        if self._writes >= self._checkpoint_due and self._checkpointing is None:
            self._start_checkpoint()
        if self._writes % TRIM_EVERY == 0 and self._rev - self._history > self._floor:
            with contextlib.suppress(StoreError):
                self._trim(self._rev - self._history)
        await asyncio.sleep(0)

    # -- watch and history ---------------------------------------------------------------------

    def watch(self, prefix: str, from_rv: int) -> WatchStream:
        return self._cache.watch(prefix, from_rv)

    async def compact(self, rv: int) -> None:
        rv = min(rv, self._rev)
        self._cache.compact(rv)
        if rv > self._floor:
            self._trim(rv)

    def _trim(self, rv: int) -> None:
        """Drop `log` rows up to `rv`: lists at revisions before it then get Expired."""
        db = self._db
        with self._errors("compacting"):
            with self._txn():
                db.execute("DELETE FROM log WHERE rv <= ?", (rv,))
                db.execute("UPDATE meta SET value=? WHERE name='floor'", (rv,))
        self._floor = rv

    def _start_checkpoint(self) -> None:
        """Start a checkpoint cycle in the background (see `_checkpoint_cycle`)."""
        if self._path == ":memory:":
            self._checkpoint_due = 1 << 62
            return
        self._checkpoint_due = self._writes + CHECKPOINT_EVERY
        self._checkpointing = asyncio.ensure_future(self._checkpoint_cycle())

    async def _checkpoint_cycle(self) -> None:
        """Copy the WAL into the database file without stalling the event loop.

        Phase 1 copies the bulk in a worker thread while writers go on appending; after any
        pause in writes the WAL is then fully checkpointed and the next write starts it over
        from its beginning. Under a steady stream of writes that moment never comes and the
        WAL would grow forever, so once it exceeds WAL_GATE_BYTES, phase 2 holds writers back
        (reads and watches go on) while the thread copies the few frames written meanwhile.
        """
        loop = asyncio.get_running_loop()
        try:
            wal_bytes = await loop.run_in_executor(None, _checkpoint, self._path)
            if wal_bytes < WAL_GATE_BYTES:
                return  # small enough: a pause in writes will let it start over by itself
            self._gate = loop.create_future()
            try:
                await loop.run_in_executor(None, _checkpoint, self._path)
            finally:
                self._gate.set_result(None)
                self._gate = None
        finally:
            self._checkpointing = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._cache.close()
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        with contextlib.suppress(sqlite3.Error):
            self._db.close()
        self._unlock()

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn sqlite3 errors into Unavailable, naming the action."""
        if self._closed:
            raise Unavailable(f"{action}: store is closed")
        try:
            yield
        except sqlite3.Error as exc:
            raise Unavailable(f"{action}: {exc}") from exc

    @contextlib.contextmanager
    def _txn(self) -> Iterator[None]:
        """One write transaction: committed on success, rolled back on any exception."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _checkpoint(path: str) -> int:
    """One PASSIVE WAL checkpoint on a connection of its own (runs in a worker thread).
    Returns the WAL file's size in bytes afterwards (0 if unknown)."""
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(path, isolation_level=None)
        try:
            db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()
    try:
        return os.path.getsize(path + "-wal")
    except OSError:
        return 0


#: the store's files hold every Secret: their owner's only
FILE_MODE = 0o600


def _owner_only(path: str) -> None:
    """Create the database file 0600 if missing (SQLite gives its -wal and -shm the database's
    mode) and tighten files an older podns left readable by others."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE))
    for name in (path, path + "-wal", path + "-shm", path + "-lock"):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(name).st_mode & 0o077:
                os.chmod(name, FILE_MODE)


def _lock(path: str) -> int:
    """Take the advisory lock that keeps a second process off the same database file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise OSError(f"database is in use by another process ({path})") from exc
    return fd
