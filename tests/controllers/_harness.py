"""Run real controllers (informers, queue, workers) against `podns.kube.testing.FakeClient`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from podns.controllers import workerloop
from podns.controllers.sharedinformers import SharedInformers
from podns.kube.testing import FakeClient


async def eventually(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll `check()` until it returns something truthy (returned), else fail after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except (KeyError, IndexError, AssertionError, TypeError) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last: {last!r}")


async def settle(fake: FakeClient, quiet: float = 0.15, timeout: float = 5.0) -> None:
    """Wait until no new action happened for `quiet` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = -1
    while loop.time() < deadline:
        if len(fake.actions) == seen:
            return
        seen = len(fake.actions)
        await asyncio.sleep(quiet)


@contextlib.asynccontextmanager
async def running(
    fake: FakeClient, *makers: Callable[[Any, SharedInformers], workerloop.Controller]
) -> AsyncIterator[list[workerloop.Controller]]:
    """Build controllers with `maker(client, informers)`, start informers and workers; stop all
    on exit."""
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    controllers = [m(fake, informers) for m in makers]
    informers.start()
    await informers.wait_synced(5)
    tasks = [asyncio.create_task(c.run()) for c in controllers]
    try:
        yield controllers
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()


async def kubelet(
    fake: FakeClient, *, ready: Callable[[dict[str, Any]], bool] = lambda _p: True, period: float = 0.01
) -> None:
    """Play the node agent: every pod not yet Running becomes Running with an IP, Ready when
    `ready(pod)`. Deleted pods simply vanish (the fake deletes at once). Runs until cancelled."""
    from podns.kube.resources import PODS
    from podns.objects import now_rfc3339

    n = 0
    while True:
        for p in fake.objects(PODS):
            if (p.get("status") or {}).get("phase") == "Running":
                continue
            n += 1
            p["status"] = {
                "phase": "Running",
                "podIP": f"10.1.{n // 250}.{n % 250 + 1}",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready(p) else "False",
                        "lastTransitionTime": now_rfc3339(),
                    }
                ],
            }
            try:
                await fake.update_status(PODS, p)
            except Exception:
                pass
        await asyncio.sleep(period)
