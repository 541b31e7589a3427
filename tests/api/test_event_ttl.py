"""Event TTL (kube-apiserver's --event-ttl): the API server deletes Events whose latest
timestamp is older than the TTL, in the background, and keeps the recent ones."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from podns.api.handlers.eventttl import last_seen, sweep
from podns.api.resources.registry import REGISTRY
from podns.cli.apiserver import duration

from .conftest import serve

pytestmark = pytest.mark.timeout(30)

EVENTS = "/api/v1/namespaces/default/events"


def _ts(age: float) -> str:
    t = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(name: str, **fields: object) -> dict:
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "Test", "message": name, "type": "Normal", **fields}


def test_last_seen_is_the_latest_timestamp() -> None:
    ev = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
          "lastTimestamp": "2026-01-01T00:10:00Z", "eventTime": "2026-01-01T00:05:00.123456Z"}
    assert last_seen(ev) == dt.datetime(2026, 1, 1, 0, 10, tzinfo=dt.UTC).timestamp()
    ev["eventTime"] = "2026-01-01T01:00:00.000000Z"
    assert last_seen(ev) == dt.datetime(2026, 1, 1, 1, tzinfo=dt.UTC).timestamp()
    assert last_seen({"metadata": {}, "lastTimestamp": "garbage"}) is None


def test_duration_flag() -> None:
    assert duration("1h") == 3600 and duration("1h30m") == 5400 and duration("500ms") == 0.5
    assert duration("0") == 0
    for bad in ("", "10", "1d", "-1s", "1h x"):
        with pytest.raises(Exception, match="invalid duration"):
            duration(bad)


async def test_sweep_deletes_only_old_events(tmp_path: Path) -> None:
    async with serve(tmp_path, types=list(REGISTRY), event_ttl=0) as api:
        # creationTimestamp is now for all; lastTimestamp / eventTime decide for the old ones
        old = await api.post(EVENTS, _event("old", lastTimestamp=_ts(7200)))
        assert old.status == 201, old.body
        await api.post(EVENTS, _event("recent", lastTimestamp=_ts(60)))
        await api.post(EVENTS, _event("micro", eventTime=_ts(10).replace("Z", ".000001Z"),
                                      reportingController="x", reportingInstance="y",
                                      action="Act"))
        store = api.server.store
        # creationTimestamp (now) is the latest for "old": with a 1h TTL, nothing goes
        assert await sweep(store, 3600) == 0
        # seen from 2h later, "old" and "recent" have expired, "micro" (eventTime) too
        assert await sweep(store, 3600, now=time.time() + 7200) == 3
        assert (await api.get(EVENTS)).body["items"] == []


async def test_api_server_expires_events_in_the_background(tmp_path: Path) -> None:
    async with serve(tmp_path, types=list(REGISTRY), event_ttl=2.0) as api:
        created = await api.post(EVENTS, _event("short-lived"))
        assert created.status == 201
        rv = created.body["metadata"]["resourceVersion"]
        # timestamps have second precision: the Event lives between 1 and ~2.2 seconds
        keep_until = time.monotonic() + 1.0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (await api.get(f"{EVENTS}/short-lived")).status == 404:
                break
            await asyncio.sleep(0.1)
        assert time.monotonic() > keep_until, "deleted before its TTL"
        assert (await api.get(f"{EVENTS}/short-lived")).status == 404
        # a watch from before the deletion sees it
        w = await api.get(f"{EVENTS}?watch=1&resourceVersion={rv}&timeoutSeconds=1")
        assert w.body["type"] == "DELETED"
        assert w.body["object"]["metadata"]["name"] == "short-lived"
        # the server still serves requests while sweeping, and new events are kept for a while
        fresh = await api.post(EVENTS, _event("fresh"))
        assert fresh.status == 201
        assert (await api.get(f"{EVENTS}/fresh")).status == 200


async def test_event_ttl_zero_keeps_events(tmp_path: Path) -> None:
    async with serve(tmp_path, types=list(REGISTRY), event_ttl=0) as api:
        await api.post(EVENTS, _event("kept", lastTimestamp=_ts(10 ** 6)))
        await asyncio.sleep(0.5)
        assert (await api.get(f"{EVENTS}/kept")).status == 200
