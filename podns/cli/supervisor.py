"""A component of `podns up` run in its own process: started, restarted when it dies, stopped with it.

`podns up` runs the cluster DNS this way so that the API server, the controllers and the node
agent never hold the GIL the DNS serving thread needs. `Supervised` starts the command (a
`podns` sub-command) in a process group of its own, waits for the one JSON line the child prints
on stdout once it serves (its report: addresses and the like), then watches it: when the child
exits without being asked to, it is started again after a backoff (1 s doubling to 30 s, back to
1 s once a child has run for a minute) with the command of `argv(report)`, so a restarted child
binds the ports its predecessor reported. `stop()` sends SIGTERM to the child's process group
(the child and any worker it started), then SIGKILL after a grace period.

The child dies with `podns up` even when `podns up` is killed with SIGKILL: it calls
`die_with_parent(pid)` first thing (PR_SET_PDEATHSIG: the kernel sends it SIGTERM when its parent
dies), which also covers the window in which the parent died before the call.

Errors: `start()` raises `ChildFailed` (message says what happened: exit code before reporting, no
report in time, an unreadable report); later failures are only logged and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

#: seconds a child gets to print its report after being started (imports and binds: ~1 s idle)
REPORT_TIMEOUT = 60.0
#: seconds between SIGTERM and SIGKILL when stopping
STOP_GRACE = 10.0
#: restart backoff: first delay, cap, and the run time after which it starts again from the first
BACKOFF_FIRST, BACKOFF_MAX, BACKOFF_RESET = 1.0, 30.0, 60.0
_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """The child did not start: it exited, or printed no usable report in time."""


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGTERM when the parent dies; exit at once if it already has (Linux;
    elsewhere a no-op). Called by the child itself, first thing."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(0)


def report(fields: dict[str, Any]) -> None:
    """The child's side: print the report line its supervisor waits for."""
    print(json.dumps(fields), flush=True)


class Supervised:
    """One supervised child. `argv(report)` gives the command line; `report` is None for the first
    start, then the previous child's report (so a restart reuses what it bound)."""

    def __init__(self, name: str, argv: Callable[[dict[str, Any] | None], list[str]], *,
                 on_report: Callable[[dict[str, Any]], None] | None = None,
                 say: Callable[[str], None] = print) -> None:
        self.name = name
        self.argv = argv
        self.on_report = on_report
        self.say = say
        self.report: dict[str, Any] | None = None
        self.restarts = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._stopping = False
        self._watch: asyncio.Task[None] | None = None
        self._relays: set[asyncio.Task[None]] = set()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    async def start(self) -> dict[str, Any]:
        """Start the child and return its report; then keep it running until `stop()`."""
        await self._spawn()
        assert self.report is not None
        self._watch = asyncio.create_task(self._supervise(), name=f"supervise:{self.name}")
        return self.report

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(*self.argv(self.report), stdout=asyncio.subprocess.PIPE,
                                                    stdin=asyncio.subprocess.DEVNULL, process_group=0)
        self.proc = proc
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), REPORT_TIMEOUT)
        except TimeoutError:
            await self._kill(proc)
            raise ChildFailed(f"{self.name} printed no report within {REPORT_TIMEOUT:g}s") from None
        except asyncio.CancelledError:  # stopped while starting: the child goes too
            await self._kill(proc)
            raise
        if not line:
            code = await proc.wait()
            raise ChildFailed(f"{self.name} exited with code {code} while starting")
        try:
            got = json.loads(line)
            if not isinstance(got, dict):
                raise ValueError("not an object")
        except ValueError:
            await self._kill(proc)
            raise ChildFailed(f"{self.name} printed an unreadable report: {line[:200]!r}") from None
        self.report = got
        if self.on_report is not None:
            self.on_report(got)
        relay = asyncio.create_task(self._relay(proc.stdout), name=f"stdout:{self.name}")
        self._relays.add(relay)
        relay.add_done_callback(self._relays.discard)

    async def _relay(self, stdout: asyncio.StreamReader) -> None:
        """Pass on what the child prints after its report (and keep its pipe from filling)."""
        while line := await stdout.readline():
            sys.stdout.write(line.decode(errors="replace"))
            sys.stdout.flush()

    async def _supervise(self) -> None:
        delay = BACKOFF_FIRST
        while not self._stopping:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            if time.monotonic() - started > BACKOFF_RESET:
                delay = BACKOFF_FIRST
            self.say(f"{self.name} (pid {self.proc.pid}) exited with code {code}; restarting in {delay:g}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)
            try:
                await self._spawn()
            except (ChildFailed, OSError) as exc:
                self.say(f"{self.name} did not restart: {exc}")
                continue
            self.restarts += 1
            self.say(f"{self.name} restarted (pid {self.proc.pid}, restart {self.restarts})")

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM the child's process group, SIGKILL it after STOP_GRACE, and reap the child
        (its workers die with it: they too ask for PR_SET_PDEATHSIG)."""
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()

    async def stop(self) -> None:
        """Stop supervising, then stop the child and its process group."""
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self.proc is not None:
            await self._kill(self.proc)


__all__ = ["ChildFailed", "Supervised", "die_with_parent", "report"]
