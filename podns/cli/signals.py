"""Shared by the long-running sub-commands: block until the operator asks the process to stop."""

from __future__ import annotations

import asyncio
import signal


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM; the handlers are removed again on the way out, so a second
    signal during the caller's shutdown takes its default effect."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
