"""Process runtime: one container instance = one local process in its own process group.

`ProcessRuntime` is the `ContainerRuntime` of this module (no images: the container's `command`
is a program of this machine); `start` / `Process` are the process-level pieces it is made of.

What a container runtime does for the kubelet, done with plain processes: start the command with
its environment, working directory and user; capture its output (`podns.node.logs.LogSink`);
report its exit; deliver signals to the whole process group (so a shell's children are stopped
with it); stop it the Kubernetes way (SIGTERM, grace period, SIGKILL).

No pod process may outlive the agent: every child is started with `PR_SET_PDEATHSIG=SIGKILL`
(the kernel kills it if the agent dies, even by SIGKILL), and its pid and start time are recorded
in a file so that an agent restarted with the same data dir kills any leftover group
(`kill_recorded`) before starting pods again.

Errors: `StartError` (command not found, not executable, bad working directory) carries the
kubelet's reason and message; nothing else escapes `start`. Exit codes follow Kubernetes: a
process killed by signal N reports 128+N.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import os
import pty
import shutil
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from podns.node.logs import LogSink
from podns.node.runtime.base import (
    ContainerConfig,
    ContainerWaiting,
    ExecSpec,
    Instance,
    InstanceIndex,
    StartError,
    exit_code,
)
from podns.node.sandbox import Sandbox

_PR_SET_PDEATHSIG = 1
_libc: ctypes.CDLL | None
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - not Linux
    _libc = None


def child_setup() -> None:
    """Runs in the child between fork and exec: die with the agent."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_setup_in(sandbox: Sandbox, errfd: int) -> Callable[[], None]:
    """The child's set-up for a process in `sandbox`: die with the agent, then enter the sandbox;
    a failure's message is written to `errfd` (subprocess only reports "preexec_fn failed")."""
    def setup() -> None:
        child_setup()
        try:
            sandbox.enter()
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.write(errfd, str(exc).encode("utf-8", "replace")[:2000])
            raise
    return setup


def read_child_error(errfd: int) -> str:
    """What `child_setup_in` wrote (empty when the child got to exec)."""
    chunks = []
    with contextlib.suppress(OSError):
        while chunk := os.read(errfd, 4096):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def resolve_executable(argv0: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The path `argv0` runs, searched in the container's PATH; raises StartError like runc."""
    if "/" in argv0:
        path = argv0 if os.path.isabs(argv0) or cwd is None else os.path.join(cwd, argv0)
        if not os.path.exists(path):
            raise StartError(f'exec: "{argv0}": stat {argv0}: no such file or directory')
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise StartError(f'exec: "{argv0}": permission denied')
        return path
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise StartError(f'exec: "{argv0}": executable file not found in $PATH')
    return found


#: bytes of output kept for the first attach session (see Process.keep_early_output)
EARLY_OUTPUT_LIMIT = 64 * 1024


class Process:
    """A running container instance. `wait()` returns its Kubernetes exit code."""

    def __init__(self, popen: subprocess.Popen[bytes], sink: LogSink | None) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session: the child leads its own group
        self.sink = sink
        self.log = sink
        self.container_id = f"podns://{self.pid}"
        self.image = self.image_id = self.reason = ""
        #: what `exec_spec` runs a command with (the container's env, cwd and sandbox)
        self.exec_env: dict[str, str] = {}
        self.exec_cwd: str | None = None
        self.exec_sandbox: Sandbox | None = None
        #: the container's stdin (`stdin: true`: a pipe's write end; `tty: true`: the pty's
        #: master), None when it has none; attach sessions write there (podns.node.streaming)
        self.stdin_fd: int | None = None
        #: the pty's master (`tty: true`), for window size changes
        self.tty_fd: int | None = None
        #: `stdinOnce`: stdin closes when the first attach session ends its input
        self.stdin_once = False
        #: output of a container with stdin or a tty until the first attach (see `take_early_output`)
        self._early: list[tuple[str, bytes]] | None = None
        self._early_bytes = 0
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._check)
        except OSError:  # pragma: no cover - kernels before 5.3: poll instead
            self._poller = loop.create_task(self._poll(), name=f"poll-{self.pid}")
        self._check()

    def _check(self) -> None:
        if self._done.done():
            return
        rc = self.popen.poll()
        if rc is None:
            return
        if self._pidfd is not None:
            asyncio.get_running_loop().remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        self.finished_at = time.time()
        self.exit_code = exit_code(rc)
        self.close_stdin()
        # as a runtime kills the container's cgroup: nothing of the group survives its leader
        self.signal_group(signal.SIGKILL)
        self._done.set_result(self.exit_code)

    async def _poll(self) -> None:  # pragma: no cover - fallback path
        while not self._done.done():
            self._check()
            await asyncio.sleep(0.05)

    @property
    def running(self) -> bool:
        return not self._done.done()

    def keep_early_output(self) -> None:
        """Remember this container's output until the first attach session takes it: `kubectl run
        -it -- nslookup x` attaches after the command may already have printed (and ended)."""
        if self.sink is not None and self._early is None:
            self._early = []
            self.sink.listeners.add(self._remember)

    def _remember(self, stream: str, data: bytes) -> None:
        if self._early is not None and self._early_bytes < EARLY_OUTPUT_LIMIT:
            self._early.append((stream, data[:EARLY_OUTPUT_LIMIT - self._early_bytes]))
            self._early_bytes += len(data)

    def take_early_output(self) -> list[tuple[str, bytes]]:
        """The output kept by `keep_early_output` (once; later attach sessions get none)."""
        early, self._early = self._early or [], None
        if self.sink is not None:
            self.sink.listeners.discard(self._remember)
        return early

    def close_stdin(self) -> None:
        """Close the container's stdin (its reader sees EOF; a pty hangs up)."""
        fd, self.stdin_fd, self.tty_fd = self.stdin_fd, None, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    async def wait(self) -> int:
        """Wait for the process to exit; return its Kubernetes exit code."""
        code = await asyncio.shield(self._done)
        if self.sink is not None:
            # the pipes may still hold the last lines: give the readers a moment to drain them
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sink.closed.wait(), 0.5)
            if not self.sink.closed.is_set():
                self.sink.close()
        return code

    def exec_spec(self, command: list[str], *, tty: bool = False, stdin: bool = False) -> ExecSpec:
        """`command` with the container's environment, working directory and (namespace mode)
        sandbox: what exec probes and hooks run. No terminal handling of its own."""
        return ExecSpec(argv=list(command), env=dict(self.exec_env), cwd=self.exec_cwd,
                        sandbox=self.exec_sandbox)

    def signal_group(self, sig: int) -> None:
        """Send `sig` to the whole process group (no-op once it is gone)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)

    async def stop(self, grace: float, sig: int = signal.SIGTERM) -> int:
        """SIGTERM (or `sig`), wait up to `grace` seconds, then SIGKILL; return the exit code."""
        if self.running:
            self.signal_group(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done), max(grace, 0.0))
        if self.running:
            self.signal_group(signal.SIGKILL)
        return await self.wait()


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    sink: LogSink | None = None,
    user: int | None = None,
    group: int | None = None,
    groups: tuple[int, ...] = (),
    sandbox: Sandbox | None = None,
    stdio: str = "none",
) -> Process:
    """Start `argv` in a new session/process group with output captured by `sink`.

    `groups` are the supplementary groups (fsGroup, supplementalGroups) when `user` or `group`
    is switched. With a `sandbox` (namespace mode) the process enters it before exec, and the
    sandbox's own cwd/user/group/groups apply instead.

    `stdio`: "none" (stdin is /dev/null), "pipe" (`stdin: true`: a pipe the agent holds the
    write end of) or "tty" (`tty: true`: a pty as stdin, stdout, stderr and controlling terminal,
    24x80 until an attach session resizes it).

    Raises StartError (reason, message) when the command cannot be executed. Must be called from
    the event loop (the exit is watched through a pidfd).
    """
    if not argv:
        raise StartError("no command specified", reason="CreateContainerError")
    if sandbox is not None:
        return _start_in(argv, env=env, sink=sink, sandbox=sandbox, stdio=stdio)
    if cwd:
        try:
            os.makedirs(cwd, exist_ok=True)
        except OSError as exc:
            raise StartError(f"chdir to cwd ({cwd!r}) set in config.json failed: {exc.strerror}") from exc
    exe = resolve_executable(argv[0], env, cwd)
    return _popen(exe, argv, env=env, cwd=cwd, sink=sink, user=user, group=group,
                  groups=groups, preexec=child_setup, stdio=stdio)


def _start_in(argv: Sequence[str], *, env: Mapping[str, str], sink: LogSink | None,
              sandbox: Sandbox, stdio: str = "none") -> Process:
    """`start` for a process inside `sandbox`; the sandbox's set-up errors become StartError."""
    try:
        exe = resolve_executable(argv[0], env, sandbox.cwd)
    except StartError:
        path = argv[0] if os.path.isabs(argv[0]) else os.path.join(sandbox.cwd or "/", argv[0])
        if not sandbox.covers(path):
            raise
        exe = path  # only visible once the volumes are mounted: let exec inside decide
    err_r, err_w = os.pipe()
    try:
        return _popen(exe, argv, env=env, cwd=None, sink=sink, user=None, group=None, groups=(),
                      preexec=child_setup_in(sandbox, err_w), stdio=stdio)
    except StartError as exc:
        os.close(err_w)
        err_w = -1
        why = read_child_error(err_r)
        if why:
            raise StartError(f"failed to create the container's sandbox: {why}") from exc
        raise
    finally:
        if err_w >= 0:
            os.close(err_w)
        os.close(err_r)


def _with_ctty(preexec: Callable[[], None]) -> Callable[[], None]:
    def setup() -> None:
        preexec()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the session's terminal
    return setup


def _popen(exe: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | None,
           sink: LogSink | None, user: int | None, group: int | None, groups: tuple[int, ...],
           preexec: Callable[[], None], stdio: str = "none") -> Process:
    master = slave = in_r = in_w = -1
    if stdio == "tty":
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        preexec = _with_ctty(preexec)
    elif stdio == "pipe":
        in_r, in_w = os.pipe()
    if sink is not None and stdio != "tty":
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
    else:
        out_r = out_w = err_r = err_w = -1
    quiet = subprocess.DEVNULL
    try:
        popen = subprocess.Popen(
            [exe, *argv[1:]],
            executable=exe,
            env=dict(env),
            cwd=cwd or None,
            stdin=slave if slave >= 0 else (in_r if in_r >= 0 else quiet),
            stdout=slave if slave >= 0 else (out_w if out_w >= 0 else quiet),
            stderr=slave if slave >= 0 else (err_w if err_w >= 0 else quiet),
            start_new_session=True,
            preexec_fn=preexec,
            user=user,
            group=group,
            # switching user/group drops the agent's supplementary groups, as a runtime does
            extra_groups=list(groups) if (user is not None or group is not None or groups) else None,
            close_fds=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        for fd in (out_r, out_w, err_r, err_w, master, slave, in_r, in_w):
            if fd >= 0:
                os.close(fd)
        if not isinstance(exc, OSError):
            raise StartError(f'exec: "{argv[0]}": {exc}') from exc
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise StartError(f'exec: "{argv[0]}": executable file not found in $PATH') from exc
        if exc.errno == errno.EACCES:
            raise StartError(f'exec: "{argv[0]}": permission denied') from exc
        raise StartError(f'exec: "{argv[0]}": {exc.strerror}') from exc
    for fd in (out_w, err_w, slave, in_r):
        if fd >= 0:
            os.close(fd)
    if sink is not None and master >= 0:
        sink.attach(os.dup(master), -1)
    elif sink is not None:
        sink.attach(out_r, err_r)
    proc = Process(popen, sink)
    if master >= 0:
        os.set_blocking(master, False)
        proc.stdin_fd = proc.tty_fd = master
    elif in_w >= 0:
        os.set_blocking(in_w, False)
        proc.stdin_fd = in_w
    return proc


NO_COMMAND = ("container has no command: podns runs containers as local processes and there is no "
              "image entrypoint to fall back to; set command (and args)")


class ProcessRuntime:
    """The `ContainerRuntime` whose containers are local processes (see the module docstring).

    `pids_file`: where the running processes are recorded for `clean_leftovers` of the next run.
    """

    name = "process"
    host_mount_points = True
    images = False

    def __init__(self, pids_file: Path) -> None:
        self.pids_file = pids_file
        self.index = InstanceIndex()
        #: waits that drop an ended process from the index (kept: the loop holds tasks weakly)
        self._forgetting: set[asyncio.Task[None]] = set()

    async def ensure_image(self, config: ContainerConfig) -> None:
        """Nothing to pull: the process runtime has no images (`image` is only reported)."""

    async def start(self, config: ContainerConfig) -> Instance:
        argv = config.argv
        if not argv:
            raise ContainerWaiting("CreateContainerError", NO_COMMAND)
        sink = LogSink(Path(config.log_path))
        try:
            spec = config.spec
            stdio = "tty" if spec.get("tty") else "pipe" if spec.get("stdin") else "none"
            proc = start(argv, env=config.env, cwd=config.cwd, sink=sink, user=config.user,
                         group=config.group, groups=config.groups, sandbox=config.sandbox,
                         stdio=stdio)
            proc.stdin_once = bool(spec.get("stdinOnce"))
            if stdio != "none":
                proc.keep_early_output()
        except StartError:
            sink.close()
            raise
        proc.exec_env, proc.exec_cwd, proc.exec_sandbox = dict(config.env), config.cwd, config.sandbox
        self.index.add(config, proc)
        task = asyncio.get_running_loop().create_task(self._forget(config, proc), name=f"forget:{proc.pid}")
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)
        return proc

    async def _forget(self, config: ContainerConfig, proc: Process) -> None:
        await proc.wait()
        self.index.discard(config, proc)

    def exec_spec(self, pod: dict[str, object], container_name: str, command: list[str], *,
                  tty: bool = False, stdin: bool = False) -> ExecSpec:
        return self.index.exec_spec(pod, container_name, command, tty=tty, stdin=stdin)

    async def clean_leftovers(self) -> int:
        """Kill the process groups a previous run of the agent recorded (see `kill_recorded`)."""
        return kill_recorded(self.pids_file)

    def checkpoint(self) -> None:
        """Record the running processes (pid and start time) for the next run's clean-up."""
        with contextlib.suppress(OSError):
            record(self.pids_file, [p for p in self.index.running() if isinstance(p, Process)])

    async def close(self) -> None:
        """Nothing held beyond the processes, which their runners stop."""


# -- leftovers from a previous agent run ------------------------------------------------------


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def record(path: Path, processes: Sequence[Process]) -> None:
    """Write `pid starttime` lines for `processes` to `path` (for `kill_recorded`)."""
    lines = []
    for p in processes:
        ticks = _start_ticks(p.pid)
        if ticks is not None and p.running:
            lines.append(f"{p.pid} {ticks}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def kill_recorded(path: Path) -> int:
    """SIGKILL the process groups recorded in `path` that are still the same processes (same
    start time, so a reused pid is never hit); return how many were killed."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    killed = 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        if _start_ticks(pid) == parts[1]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed += 1
    return killed
