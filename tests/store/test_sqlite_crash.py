"""SIGKILL durability of the SQLite store: every acknowledged write survives kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from podns.store.sqlite import SQLiteStore

pytestmark = pytest.mark.timeout(60)

#: the repository root, so the child imports this checkout's podns
REPO = str(Path(__file__).resolve().parents[2])

#: a child that writes objects as fast as it can and prints "key rv" after each returned write
WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from podns.store.sqlite import SQLiteStore

    async def main() -> None:
        store = SQLiteStore(sys.argv[1])
        i = 0
        while True:
            key = f"pods/default/p{i}"
            obj = await store.create(key, {"metadata": {"name": f"p{i}"}, "spec": {"n": i}})
            if i % 3 == 0:
                await store.delete(f"pods/default/p{i - 3}") if i >= 3 else None
            print(key, obj["metadata"]["resourceVersion"], flush=True)
            i += 1

    asyncio.run(main())
    """
)


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    """given a writer SIGKILLed mid-stream, when the file is reopened, then every write it
    acknowledged is there and the revision is at least the last acknowledged one."""
    db = tmp_path / "crash.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(db), stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": REPO},
    )
    acked: list[tuple[str, int]] = []
    assert proc.stdout is not None
    while len(acked) < 3000:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line, "writer exited early"
        acked_key, acked_rv = line.decode().split()
        acked.append((acked_key, int(acked_rv)))
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    store = SQLiteStore(db)
    try:
        last_rv = acked[-1][1]
        assert await store.current_rv() >= last_rv
        n = int(acked[-1][0].rsplit("p", 1)[1])
        deleted = {f"pods/default/p{i - 3}" for i in range(3, n + 1, 3)}
        # The next, unacknowledged iteration may have committed its delete before the kill.
        maybe = f"pods/default/p{n - 2}" if (n + 1) % 3 == 0 else ""
        live = {o["metadata"]["name"] for o in (await store.list("pods/default/")).items}
        for key, rv in acked:
            if key == maybe:
                continue
            if key in deleted:
                assert key.rsplit("/", 1)[1] not in live
                continue
            obj = await store.get(key)
            assert int(obj["metadata"]["resourceVersion"]) == rv
        # Revisions go on from where the killed process stopped, never reusing one.
        new = await store.create("pods/default/after", {"metadata": {"name": "after"}})
        assert int(new["metadata"]["resourceVersion"]) == await store.current_rv() > last_rv
    finally:
        await store.close()


async def test_second_process_is_refused(tmp_path: Path) -> None:
    """given a store open in this process, opening the same file again is refused clearly."""
    from podns.store.errors import Unavailable

    store = SQLiteStore(tmp_path / "x.db")
    try:
        with pytest.raises(Unavailable, match="in use"):
            SQLiteStore(tmp_path / "x.db")
    finally:
        await store.close()
    SQLiteStore(tmp_path / "x.db")
