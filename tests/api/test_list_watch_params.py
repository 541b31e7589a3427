"""List and watch query parameters as kube-apiserver treats them: a negative `limit` is a 400,
a negative `timeoutSeconds` ends the watch at once (its timer has already fired), and a
`resourceVersion` the store has not reached is waited for up to 3 s, then answered 504 Timeout
"Too large resource version" with the ResourceVersionTooLarge cause (the watch cache's
waitUntilFreshAndBlock)."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"


async def test_negative_limit_is_400(real_api: Api) -> None:
    """given limit=-5, the list answers 400 naming the parameter (it was silently ignored)."""
    r = await real_api.get(f"{CMS}?limit=-5")
    assert r.status == 400, r.body
    assert r.body["kind"] == "Status" and "limit" in r.body["message"]


async def test_negative_timeout_ends_the_watch_at_once(real_api: Api) -> None:
    """given timeoutSeconds=-1, the watch answers 200 and its stream ends at once."""
    start = time.monotonic()
    r = await asyncio.wait_for(real_api.get(f"{CMS}?watch=1&timeoutSeconds=-1"), 10)
    assert r.status == 200
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("verb", ["watch", "list"])
async def test_a_future_resource_version_is_504_after_a_wait(real_api: Api, verb: str) -> None:
    """given resourceVersion far beyond the store's, the request waits ~3 s for it, then
    answers 504 Timeout: "Too large resource version" with the ResourceVersionTooLarge cause."""
    current = int((await real_api.get(CMS)).body["metadata"]["resourceVersion"])
    query = f"resourceVersion={current + 1000}" + ("&watch=1" if verb == "watch" else "")
    start = time.monotonic()
    r = await asyncio.wait_for(real_api.get(f"{CMS}?{query}"), 15)
    waited = time.monotonic() - start
    assert r.status == 504, r.body
    assert r.body["reason"] == "Timeout"
    assert r.body["message"] == f"Timeout: Too large resource version: {current + 1000}, current: {current}"
    assert r.body["details"]["causes"] == [{"reason": "ResourceVersionTooLarge",
                                           "message": "Too large resource version"}]
    assert 2.5 <= waited < 10


async def test_a_resource_version_reached_during_the_wait_is_served(real_api: Api) -> None:
    """given a watch from the next resourceVersion, a write within the wait lets it start."""
    current = int((await real_api.get(CMS)).body["metadata"]["resourceVersion"])
    watch = asyncio.create_task(real_api.get(f"{CMS}?watch=1&resourceVersion={current + 1}&timeoutSeconds=2"))
    await asyncio.sleep(0.5)
    assert (await real_api.post(CMS, {"metadata": {"name": "w1"}})).status == 201
    r = await asyncio.wait_for(watch, 15)
    assert r.status == 200
