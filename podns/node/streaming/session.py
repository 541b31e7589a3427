"""One exec session: a command in a container's view, wired to a stream transport's channels.

The transports (`websocket.py`, `spdy.py`) turn their wire format into a `Channels` object:
stdin bytes (None = EOF) and terminal sizes in, stdout/stderr bytes out through `send`, and
`gone` set when the client disconnects. `run` starts the command described by an `ExecSpec`
(the runtime's `exec_spec`: argv, env, working directory, and in namespace mode the pod's
sandbox) with a pty (`tty`) or pipes, pumps the channels until the process exits and its output
is drained, and returns the error-channel Status: the exit code (`NonZeroExitCode`), or 126/127
with the runtime's message on stderr when the command cannot be executed (126 too when the pod's
sandbox cannot be entered, e.g. a volume's mount point gone from the host). The transports send
`status_of(run)`: whatever else fails is an InternalError Status, never a close without one.

Nothing outlives a session: the process runs in its own process group, dies with the agent
(PR_SET_PDEATHSIG), and the whole group is killed when the client goes away; every descriptor
is closed when `run` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import pty
import signal
import struct
import subprocess
import termios
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from podns.node.runtime import process as runtime
from podns.node.runtime.base import ExecSpec, StartError, exit_code, wait_pid
from podns.objects import remotecommand as rc
from podns.objects.apistatus import Status

log = logging.getLogger(__name__)

#: bytes read from the process per chunk
CHUNK = 32 * 1024
#: seconds a TTY session waits for the client's first terminal size before starting the command
FIRST_RESIZE_WAIT = 3.0
#: seconds of silence after which output still open once the process exited is given up (a
#: daemonised child holding the pipe open must not keep the session open forever); output that
#: keeps coming, or that arrived while this process was not scheduled, is still delivered
DRAIN_AFTER_EXIT = 2.0


@dataclass(frozen=True, slots=True)
class Options:
    """Which streams the client asked for (query `stdin`, `stdout`, `stderr`, `tty`)."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Any) -> Options:
        tty = rc.query_flag(query.get("tty"))
        return cls(stdin=rc.query_flag(query.get("stdin")) or rc.query_flag(query.get("input")),
                   stdout=rc.query_flag(query.get("stdout")) or rc.query_flag(query.get("output")),
                   stderr=(rc.query_flag(query.get("stderr")) or rc.query_flag(query.get("error")))
                   and not tty,  # as the kubelet: a TTY merges stderr into stdout
                   tty=tty)


@dataclass
class Channels:
    """The transport's side of a session (see the module docstring)."""

    send: Callable[[int, bytes], Awaitable[None]]
    stdin: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    resize: asyncio.Queue[tuple[int, int]] = field(default_factory=asyncio.Queue)
    gone: asyncio.Event = field(default_factory=asyncio.Event)


#: what a transport runs on its channels: `run` (exec) or an attach, returning the Status
Runner = Callable[[Options, Channels], Awaitable[Status]]


async def status_of(runner: Runner, opts: Options, ch: Channels) -> Status:
    """The Status `runner` returns, and for an exception the kubelet's InternalError Status
    ("error executing command in container: ..."), logged here once: a session must end with a
    Status, since one that closes without it reads as success to kubectl (exit code 0, the
    output simply missing)."""
    try:
        return await runner(opts, ch)
    except Exception as exc:
        log.exception("exec/attach session failed")
        return rc.failure_status(f"error executing command in container: {exc}")


class _ExecFailed(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def set_size(fd: int, cols: int, rows: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _preexec(spec: ExecSpec, tty: bool, errfd: int) -> Callable[[], None]:
    enter = runtime.child_setup_in(spec.sandbox, errfd) if spec.sandbox is not None else None

    def setup() -> None:
        if enter is not None:
            enter()
        else:
            runtime.child_setup()
        if tty:  # the pty becomes the session's controlling terminal (job control, ^C)
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return setup


def _resolve(spec: ExecSpec) -> str:
    """The executable to run; _ExecFailed(127/126) with the runtime's message when there is none."""
    try:
        cwd = spec.sandbox.cwd if spec.sandbox else spec.cwd
        return runtime.resolve_executable(spec.argv[0], spec.env, cwd)
    except StartError as exc:
        if spec.sandbox is not None:
            path = spec.argv[0] if os.path.isabs(spec.argv[0]) else ""
            if path and spec.sandbox.covers(path):
                return path  # only visible inside the sandbox's mounts: exec decides there
        raise _ExecFailed(126 if "permission denied" in exc.message else 127, exc.message) from None


async def _spawn(spec: ExecSpec, opts: Options,
                 size: tuple[int, int] | None) -> tuple[asyncio.subprocess.Process, int | None]:
    """Start the process: (process, pty master fd or None). A TTY gets `size` (cols, rows) before
    the command starts, so its first look at the terminal already sees the client's size."""
    exe = _resolve(spec)
    master = slave = -1
    if opts.tty:
        master, slave = pty.openpty()
        if size is not None:
            set_size(master, *size)
    err_r, err_w = os.pipe()
    pipe = asyncio.subprocess.PIPE
    devnull = asyncio.subprocess.DEVNULL
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, *spec.argv[1:], executable=exe, env=dict(spec.env),
            cwd=None if spec.sandbox is not None else (spec.cwd or None),
            stdin=slave if opts.tty else (pipe if opts.stdin else devnull),
            stdout=slave if opts.tty else (pipe if opts.stdout else devnull),
            stderr=slave if opts.tty else (pipe if opts.stderr else devnull),
            start_new_session=True, preexec_fn=_preexec(spec, opts.tty, err_w),
            )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        # a set-up step failing in the child (entering the sandbox) is a SubprocessError
        # ("Exception occurred in preexec_fn."), with the step's own words on err_r
        if master >= 0:
            os.close(master)
        os.close(err_w)
        err_w = -1
        why = runtime.read_child_error(err_r)
        if why or isinstance(exc, subprocess.SubprocessError):
            step = "enter the pod's sandbox" if spec.sandbox is not None else "set up the command"
            raise _ExecFailed(126, f"failed to {step}: {why or exc}") from None
        missing = isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)
        if missing:
            reason = "executable file not found in $PATH"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror.lower()  # permission denied, exec format error, ...
        else:
            reason = str(exc)
        # as a shell: 127 = not found, 126 = found but cannot be executed
        raise _ExecFailed(127 if missing else 126, f'exec: "{spec.argv[0]}": {reason}') from None
    except Exception:
        if master >= 0:
            os.close(master)
        raise
    finally:
        if slave >= 0:
            os.close(slave)
        if err_w >= 0:
            os.close(err_w)
        os.close(err_r)
    return proc, (master if opts.tty else None)


class _Activity:
    """How many chunks of output the pumps have read: draining after the process exited goes on
    while this moves."""

    def __init__(self) -> None:
        self.reads = 0


async def _pump_reader(reader: asyncio.StreamReader | None, channel: int, ch: Channels,
                       activity: _Activity) -> None:
    if reader is None:
        return
    while data := await reader.read(CHUNK):
        activity.reads += 1
        await ch.send(channel, data)


async def _pump_master(master: int, ch: Channels, activity: _Activity) -> None:
    """Copy the pty's output to stdout until the terminal closes (EIO once the process and all
    its children let go of it)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(master, False)
    ready: asyncio.Queue[None] = asyncio.Queue()
    loop.add_reader(master, ready.put_nowait, None)
    try:
        while True:
            await ready.get()
            try:
                data = os.read(master, CHUNK)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            activity.reads += 1
            await ch.send(rc.STDOUT, data)
    finally:
        loop.remove_reader(master)


async def write_fd(fd: int, data: bytes) -> None:
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


async def _feed_stdin(proc: asyncio.subprocess.Process, master: int | None, ch: Channels) -> None:
    while True:
        data = await ch.stdin.get()
        if master is not None:
            # EOF on a terminal is ^D at the start of a line
            with contextlib.suppress(OSError):
                await write_fd(master, data if data is not None else b"\x04")
            if data is None:
                return
            continue
        if proc.stdin is None:
            if data is None:
                return
            continue
        try:
            if data is None:
                proc.stdin.close()
                return
            proc.stdin.write(data)
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return  # the process closed its stdin: the rest is dropped, as the kubelet does


async def _apply_resizes(master: int | None, ch: Channels) -> None:
    while True:
        cols, rows = await ch.resize.get()
        if master is not None:
            set_size(master, cols, rows)


async def _exited(proc: asyncio.subprocess.Process) -> int:
    """The process's exit status, as soon as it exits. Not `proc.wait()`: asyncio (3.11) wakes
    that only once the output pipes are closed as well, so a daemonised child holding stdout
    open would keep the session open for as long as it lives. A pidfd says when the process
    itself ended; asyncio's child watcher then reaps it and sets the return code."""
    with contextlib.suppress(OSError):  # no pidfd (Linux < 5.3): the return code alone
        await wait_pid(proc.pid)
    delay = 0.001
    while proc.returncode is None:  # the watcher's reap is a moment behind (or: no pidfd)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return proc.returncode


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


async def run(spec: ExecSpec, opts: Options, ch: Channels) -> Status:
    """Run the session (see the module docstring); returns the Status for the error channel."""
    if opts.tty and ch.resize.empty():
        # kubectl sends the terminal's size right after connecting: start the command on a
        # terminal of that size, not 0x0 (a shell would lay out its first screen wrongly)
        with contextlib.suppress(TimeoutError):
            ch.resize.put_nowait(await asyncio.wait_for(ch.resize.get(), FIRST_RESIZE_WAIT))
    size = None
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:  # the latest size the client sent before the command starts
            size = ch.resize.get_nowait()
    try:
        proc, master = await _spawn(spec, opts, size if opts.tty else None)
    except _ExecFailed as exc:
        message = f"podns: exec failed: {exc}\n".encode()
        if opts.stderr or opts.tty:
            await ch.send(rc.STDERR if opts.stderr else rc.STDOUT, message)
        return rc.exit_status(exc.code)
    helpers = [asyncio.create_task(_feed_stdin(proc, master, ch), name="exec-stdin"),
               asyncio.create_task(_apply_resizes(master, ch), name="exec-resize")]
    activity = _Activity()
    if master is not None:
        outputs = [asyncio.create_task(_pump_master(master, ch, activity), name="exec-pty")]
    else:
        outputs = [asyncio.create_task(_pump_reader(proc.stdout, rc.STDOUT, ch, activity),
                                       name="exec-stdout"),
                   asyncio.create_task(_pump_reader(proc.stderr, rc.STDERR, ch, activity),
                                       name="exec-stderr")]
    waiter = asyncio.create_task(_exited(proc), name="exec-wait")
    gone = asyncio.create_task(ch.gone.wait(), name="exec-gone")
    try:
        await asyncio.wait([waiter, gone], return_when=asyncio.FIRST_COMPLETED)
        if gone.done():
            _kill_group(proc)
            await waiter
            return rc.failure_status("the client went away")
        while True:  # drain: give up only after DRAIN_AFTER_EXIT without any output read
            before = activity.reads
            _, pending = await asyncio.wait(outputs, timeout=DRAIN_AFTER_EXIT)
            if not pending or activity.reads == before:
                break
        if pending:  # a child still holds the output open: end the session anyway
            _kill_group(proc)
            await asyncio.wait(pending, timeout=DRAIN_AFTER_EXIT)  # its pipes close with it
        return rc.exit_status(exit_code(waiter.result()))
    finally:
        for task in [*helpers, *outputs, waiter, gone]:
            task.cancel()
        await asyncio.gather(*helpers, *outputs, waiter, gone, return_exceptions=True)
        if proc.returncode is None:
            _kill_group(proc)
            with contextlib.suppress(Exception):
                await proc.wait()
        if master is not None:
            with contextlib.suppress(OSError):
                os.close(master)
        if proc.stdin is not None:
            proc.stdin.close()
