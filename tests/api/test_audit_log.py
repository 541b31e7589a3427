"""The audit log (`--audit-log FILE`): one JSON line per request, kube-apiserver's audit Event at
the Metadata level: user, verb, objectRef (resource, namespace, name, subresource), the status
code, timestamps and the latency; no bodies; the file is 0600."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from podns.api.handlers.authorization import ADMIN_USER, READONLY_USER
from podns.api.server.apiserver import ApiServer
from podns.store.sqlite import SQLiteStore
from tests.e2e._distributed import api
from tests.e2e.conftest import Podns

from .conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
async def audited(tmp_path: Path) -> AsyncIterator[tuple[Api, Path]]:
    store = SQLiteStore(tmp_path / "podns.db")
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False, audit_log=str(tmp_path / "audit.log"))
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield Api(server, session), tmp_path / "audit.log"
    await server.stop()
    await store.close()


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_text().splitlines()]


async def test_each_request_is_one_metadata_event(audited: tuple[Api, Path]) -> None:
    """given a create, a get, a list, a watch, a read-only user's denied write, a request
    without a token and an unknown object, each is one Event line with its user, verb,
    objectRef and code; no Secret value is logged."""
    a, log = audited
    await a.post(CMS, {"metadata": {"name": "c1"}, "data": {"password": "hunter2"}})
    await a.get(f"{CMS}/c1")
    await a.get(CMS)
    await a.get(f"{CMS}?watch=1&timeoutSeconds=-1")
    await a.post(CMS, {"metadata": {"name": "c2"}}, token="readonly")
    await a.get(CMS, token=None)
    await a.get(f"{CMS}/missing")
    events = lines(log)
    got = [(e["user"]["username"], e["verb"], e.get("objectRef", {}).get("name"),
            e["responseStatus"]["code"]) for e in events]
    assert got == [(ADMIN_USER, "create", None, 201), (ADMIN_USER, "get", "c1", 200),
                   (ADMIN_USER, "list", None, 200), (ADMIN_USER, "watch", None, 200),
                   (READONLY_USER, "create", None, 403), ("system:anonymous", "list", None, 401),
                   (ADMIN_USER, "get", "missing", 404)]
    first = events[0]
    assert first["kind"] == "Event" and first["apiVersion"] == "audit.k8s.io/v1"
    assert first["level"] == "Metadata" and first["stage"] == "ResponseComplete"
    assert first["objectRef"] == {"resource": "configmaps", "namespace": "default", "apiGroup": "",
                                  "apiVersion": "v1"}
    assert first["requestURI"] == CMS and first["sourceIPs"] == ["127.0.0.1"]
    assert first["annotations"]["podns.io/latency"].endswith("s")
    assert float(first["annotations"]["podns.io/latency"][:-1]) >= 0
    assert first["requestReceivedTimestamp"] <= first["stageTimestamp"]
    assert "hunter2" not in log.read_text()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_apiserver_flag_writes_the_audit_log(tmp_path: Path) -> None:
    """given `podns apiserver --audit-log FILE`, a request through it is a line in FILE."""
    log = tmp_path / "audit.log"
    server = Podns(tmp_path, "--store", "memory://", "--audit-log", str(log), command="apiserver").start()
    try:
        status, _ = api(server, "GET", "/api/v1/namespaces/default/pods/nope")
        assert status == 404
    finally:
        server.stop()
    events = [e for e in lines(log) if e.get("objectRef", {}).get("name") == "nope"]
    assert [(e["verb"], e["responseStatus"]["code"], e["objectRef"]["resource"]) for e in events] == \
        [("get", 404, "pods")]
