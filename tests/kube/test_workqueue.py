"""WorkQueue semantics (dedup, one worker per key, delays, back-off) and run_workers."""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import pytest

from podns.kube.workqueue import ExponentialBackoff, WorkQueue, run_workers

pytestmark = pytest.mark.timeout(10)


async def test_dedup_and_fifo() -> None:
    """Keys added several times while waiting come out once, in first-added order."""
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_in_processing_is_requeued_after_done() -> None:
    """A key re-added while being processed is not handed out again until done()."""
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.05)
    q.done("a")
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_get_waits_and_shutdown_releases_all_getters() -> None:
    """Waiting getters get a key when added, and None on shutdown."""
    q = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add("x")
    await asyncio.sleep(0.01)
    assert sum(t.done() for t in getters) == 1
    q.shutdown()
    results = await asyncio.gather(*getters)
    assert results.count(None) == 2 and "x" in results
    q.add("late")
    assert len(q) == 0


async def test_add_after_earliest_wins() -> None:
    """add_after delays the key; a second, earlier add_after of the same key wins."""
    q = WorkQueue()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    q.add_after("a", 5.0)
    q.add_after("a", 0.05)
    assert await q.get() == "a"
    assert 0.04 <= loop.time() - t0 < 1.0


def test_exponential_backoff() -> None:
    """5 ms doubling per failure, capped; forget resets."""
    rl = ExponentialBackoff(0.005, 1000.0)
    assert [rl.when("k") for _ in range(4)] == [0.005, 0.01, 0.02, 0.04]
    assert rl.num_requeues("k") == 4
    for _ in range(30):
        rl.when("k")
    assert rl.when("k") == 1000.0
    rl.forget("k")
    assert rl.when("k") == 0.005 and rl.when("other") == 0.005


async def test_run_workers_never_runs_one_key_twice_at_once() -> None:
    """With 4 workers and keys re-added while processing, no key runs concurrently and every
    key's last addition is processed."""
    q = WorkQueue()
    running: set[Hashable] = set()
    runs: dict[Hashable, int] = {}
    overlap = False

    async def sync(key: Hashable) -> None:
        nonlocal overlap
        if key in running:
            overlap = True
        running.add(key)
        await asyncio.sleep(0.005)
        running.discard(key)
        runs[key] = runs.get(key, 0) + 1

    workers = asyncio.create_task(run_workers(q, sync, 4))
    for _ in range(5):
        for k in "abc":
            q.add(k)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.1)
    q.shutdown()
    await asyncio.wait_for(workers, 2)
    assert not overlap
    assert set(runs) == {"a", "b", "c"} and all(2 <= n <= 5 for n in runs.values())


async def test_run_workers_retries_with_backoff_then_drops() -> None:
    """A failing sync is retried max_retries times with back-off, then dropped; a success
    forgets the back-off."""
    q = WorkQueue(rate_limiter=ExponentialBackoff(0.001, 0.01))
    attempts: dict[Hashable, int] = {}
    failures: list[tuple[Hashable, bool]] = []

    async def sync(key: Hashable) -> None:
        attempts[key] = attempts.get(key, 0) + 1
        if key == "bad" or (key == "flaky" and attempts[key] < 3):
            raise RuntimeError(f"{key} failed")

    workers = asyncio.create_task(run_workers(
        q, sync, 2, lambda k, e, retrying: failures.append((k, retrying)), max_retries=3))
    q.add("bad")
    q.add("flaky")
    await asyncio.sleep(0.3)
    q.shutdown()
    await asyncio.wait_for(workers, 2)
    assert attempts == {"bad": 4, "flaky": 3}
    assert [r for k, r in failures if k == "bad"] == [True, True, True, False]
    assert q.num_requeues("flaky") == 0 and q.num_requeues("bad") == 0


async def test_run_workers_without_a_retry_limit_keeps_retrying() -> None:
    """max_retries=None (StatefulSet, ReplicaSet, DaemonSet, Job, CronJob): a key failing past
    the usual limit of 15 is still retried, with back-off capped at the limiter's maximum, and
    succeeds once the cause is gone."""
    q = WorkQueue(rate_limiter=ExponentialBackoff(0.0005, 0.002))
    attempts = 0
    failures: list[bool] = []

    async def sync(key: Hashable) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 40:
            raise RuntimeError("still failing")

    workers = asyncio.create_task(run_workers(
        q, sync, 1, lambda k, e, retrying: failures.append(retrying), max_retries=None))
    q.add("sts")
    for _ in range(400):
        if attempts > 40:
            break
        await asyncio.sleep(0.01)
    q.shutdown()
    await asyncio.wait_for(workers, 2)
    assert attempts == 41 and len(failures) == 40 and all(failures)
    assert q.num_requeues("sts") == 0
