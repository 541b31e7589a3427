"""Fixtures for the API client's unit tests: an in-process fake API server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from podns.kube.client import Client
from podns.kube.config import in_memory
from tests._support import free_port

from .apiserver import FakeAPIServer

Started = tuple[FakeAPIServer, str]


@pytest.fixture
async def start_server() -> AsyncIterator[Callable[[], Awaitable[Started]]]:
    """A factory starting fake API servers on free loopback ports; all stopped at teardown."""
    runners: list[web.AppRunner] = []

    async def start() -> Started:
        fake = FakeAPIServer()
        runner = web.AppRunner(fake.app(), shutdown_timeout=0.1, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return fake, f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def fake(start_server: Callable[[], Awaitable[Started]]) -> AsyncIterator[Started]:
    yield await start_server()


@pytest.fixture
async def client(fake: Started) -> AsyncIterator[Client]:
    async with Client(in_memory([fake[1]])) as c:
        yield c


def dead_url() -> str:
    """A loopback URL nobody listens on (bound then closed)."""
    return f"http://127.0.0.1:{free_port()}"
