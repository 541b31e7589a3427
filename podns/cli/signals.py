"""Shared by the long-running sub-commands: block until the operator asks the process to stop."""

from __future__ import annotations

import asyncio
import signal
from types import TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM; the handlers are removed again on the way out, so a second
    signal during the caller's shutdown takes its default effect."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


class StopSignals:
    """SIGINT and SIGTERM for a command that starts several things, then serves until told to stop.

    Entered first thing (in the command's main task): a signal while starting cancels that task,
    so what has started unwinds through the command's own `finally` / exit stacks and the
    command exits as after a normal stop (the default SIGTERM action would kill the process and
    leave its children; the default SIGINT a KeyboardInterrupt past the clean-up). After
    `await serve()` the same signal just ends the wait. Either way the handlers are removed at
    the first signal, so a second one during the clean-up takes its default effect.
    """

    def __init__(self) -> None:
        self.requested = False
        self._task: asyncio.Task[object] | None = None
        self._serving = False
        self._stop = asyncio.Event()

    def __enter__(self) -> StopSignals:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove()

    def _remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        self.requested = True
        self._remove()
        self._stop.set()
        if not self._serving and self._task is not None:
            self._task.cancel()

    @property
    def serving(self) -> bool:
        """`serve()` was reached: everything started."""
        return self._serving

    async def serve(self) -> None:
        """Started: wait for the signal (at once when one came while starting)."""
        self._serving = True
        await self._stop.wait()

    def stopped_while_starting(self) -> bool:
        """Whether the CancelledError the main task caught is the one a signal while starting
        caused (the caller then returns as after a normal stop); any other it re-raises."""
        if not self.requested or self._task is None:
            return False
        self._task.uncancel()
        return True
