"""Attach: a client joins a running container's own stdin and output (`kubectl attach`,
`kubectl run -it`).

The process runtime gives a container with `stdin: true` a pipe as its stdin and one with
`tty: true` a pty (`podns.node.runtime.process`); its output is captured by its log sink,
which also hands every chunk to listeners. An attach session listens there (output from now
on, stdout and stderr apart, or one stream on a pty), writes the client's stdin to the
container's stdin (closing it at the client's EOF when the container says `stdinOnce`) and
applies resizes to the pty. The first session also gets what the container printed before it
(up to 64 KiB): `kubectl run -it -- nslookup x` attaches after the pod started, when a quick
command may have printed everything already (the kubelet drops that output; kubectl then shows
nothing unless the pod had completed). It ends when the container's process exits (once its output is
drained) or the client leaves; the container keeps running in the latter case, as with the
kubelet. The Status is Success: kubectl reads the exit code from the Pod.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from podns.node.streaming import session
from podns.objects import remotecommand as rc
from podns.objects.apistatus import Status

#: seconds the output may keep coming after the container's process exited
DRAIN_AFTER_EXIT = 2.0


class NotAttachable(Exception):
    """The container's runtime offers no stdio to attach to."""


async def attach(instance: Any, opts: session.Options, ch: session.Channels) -> Status:
    """Run one attach session on `instance` (a process runtime `Process`); see the module doc."""
    sink = getattr(instance, "sink", None)
    if sink is None:
        raise NotAttachable("this container's runtime does not support attach")
    out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def listener(stream: str, data: bytes) -> None:
        out.put_nowait((stream, data))

    take = getattr(instance, "take_early_output", None)
    for item in take() if take is not None else ():
        out.put_nowait(item)
    sink.listeners.add(listener)
    tty = getattr(instance, "tty_fd", None) is not None

    async def pump_out() -> None:
        while True:
            stream, data = await out.get()
            if tty or stream == "stdout":
                if opts.stdout:
                    await ch.send(rc.STDOUT, data)
            elif opts.stderr:
                await ch.send(rc.STDERR, data)

    async def pump_in() -> None:
        while True:
            data = await ch.stdin.get()
            fd = instance.stdin_fd
            if data is None:
                if instance.stdin_once:
                    instance.close_stdin()
                return
            if fd is not None:
                with contextlib.suppress(OSError):
                    await session.write_fd(fd, data)

    async def resize() -> None:
        while True:
            cols, rows = await ch.resize.get()
            if instance.tty_fd is not None:
                session.set_size(instance.tty_fd, cols, rows)

    tasks = [asyncio.create_task(pump_out(), name="attach-out"),
             asyncio.create_task(resize(), name="attach-resize")]
    if opts.stdin:
        tasks.append(asyncio.create_task(pump_in(), name="attach-in"))
    exited = asyncio.create_task(instance.wait(), name="attach-exit")
    gone = asyncio.create_task(ch.gone.wait(), name="attach-gone")
    try:
        await asyncio.wait([exited, gone], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sink.closed.wait(), DRAIN_AFTER_EXIT)
            while not out.empty():  # what the sink read last
                await asyncio.sleep(0)
                if tasks[0].done():
                    break
            await asyncio.sleep(0.05)
        return rc.success_status()
    finally:
        sink.listeners.discard(listener)
        for task in [*tasks, exited, gone]:
            task.cancel()
        await asyncio.gather(*tasks, exited, gone, return_exceptions=True)
