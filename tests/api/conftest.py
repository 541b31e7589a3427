"""In-process API server fixtures: a real `ApiServer` over a real SQLiteStore, plain HTTP on a
free loopback port, driven with aiohttp's client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from podns.api.server.apiserver import ApiServer
from podns.store.sqlite import SQLiteStore

from .standin import TYPES


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Api:
    """A tiny HTTP client for the server under test (admin token by default)."""

    def __init__(self, server: ApiServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session
        assert server.tokens is not None
        self.token = server.tokens.admin

    async def call(self, method: str, path: str, body: Any = None, *,
                   content_type: str | None = "application/json", token: str | None = "admin",
                   headers: dict[str, str] | None = None, raw: bytes | None = None) -> Reply:
        hdrs = dict(headers or {})
        assert self.server.tokens is not None
        if token == "admin":
            hdrs["Authorization"] = f"Bearer {self.server.tokens.admin}"
        elif token == "readonly":
            hdrs["Authorization"] = f"Bearer {self.server.tokens.readonly}"
        elif token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw
        if data is None and body is not None:
            data = orjson.dumps(body)
        if content_type and data is not None:
            hdrs["Content-Type"] = content_type
        async with self.session.request(method, self.server.url + path, data=data,
                                        headers=hdrs) as resp:
            text = await resp.read()
            try:
                parsed = orjson.loads(text) if text else None
            except orjson.JSONDecodeError:
                parsed = text.decode()
            return Reply(resp.status, parsed, resp.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return await self.call("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any, ptype: str = "merge", **kw: Any) -> Reply:
        ct = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
              "strategic": "application/strategic-merge-patch+json",
              "apply": "application/apply-patch+yaml"}[ptype]
        return await self.call("PATCH", path, body, content_type=ct, **kw)

    async def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("DELETE", path, body, **kw)


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **server_args: Any) -> AsyncIterator[Api]:
    """An ApiServer over SQLite in `tmp_path` (stand-in kinds unless `types` is given)."""
    store = SQLiteStore(tmp_path / "podns.db")
    server_args.setdefault("types", TYPES)
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False, **server_args)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(server, session)
    finally:
        await server.stop()
        await store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serve(tmp_path) as a:
        yield a


@pytest.fixture
async def real_api(tmp_path: Path) -> AsyncIterator[Api]:
    """The in-process server with the real registry of kinds."""
    store = SQLiteStore(tmp_path / "podns.db")
    server = ApiServer(store, tmp_path, "127.0.0.1:0", tls=False)
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield Api(server, session)
    await server.stop()
    await store.close()
