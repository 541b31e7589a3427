"""Container logs on disk: capture, rotation, and reading back for `kubectl logs`.

Each container instance (one start of one container) writes to its own file,
`<pod dir>/<container>/<restartCount>.log`, in the CRI log format the kubelet uses
(`<RFC3339Nano timestamp> <stdout|stderr> <F|P> <message>`: P marks a partial line). The agent
reads the process's stdout and stderr pipes itself (rather than handing it the file) so that every
line carries a timestamp and the stream it came from, and so that size limits hold: when a file
passes `max_bytes` it is rotated (`N.log` -> `N.log.1` ...), keeping at most `max_files` files.
Only the current and the previous instance of a container are kept (`kubectl logs --previous`).

`LogSink` is the writer (event-loop readers on two pipe fds); `read_log` / `follow_log` are the
readers used by the node's HTTP server. Nothing here raises on a full or vanished disk: capture
stops quietly for that instance (logging is never allowed to take a pod down).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from podns.objects.times import now_rfc3339_nano, parse_time

#: kubelet defaults: containerLogMaxSize 10Mi, containerLogMaxFiles 5
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 5
#: the CRI splits lines longer than this into partial (P) records, as containerd does
MAX_LINE = 16 * 1024


class LogSink:
    """Captures one container instance's stdout/stderr into `path` (CRI format, rotated)."""

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_files: int = DEFAULT_MAX_FILES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max(1, max_files)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "ab")
        self._size = self._file.tell()
        self._partial: dict[str, bytes] = {}
        self._open_fds: set[int] = set()
        self.closed = asyncio.Event()
        self._changed = asyncio.Event()
        #: called with (stream, bytes) for every chunk captured (attach sessions listen here)
        self.listeners: set[Callable[[str, bytes], None]] = set()

    def attach(self, stdout_fd: int, stderr_fd: int) -> None:
        """Start reading the two (read ends of the) pipes; they are closed at EOF. A negative
        fd is no stream (a container on a pty has one output, read as stdout)."""
        loop = asyncio.get_running_loop()
        for fd, stream in ((stdout_fd, "stdout"), (stderr_fd, "stderr")):
            if fd < 0:
                continue
            os.set_blocking(fd, False)
            self._open_fds.add(fd)
            loop.add_reader(fd, self._on_readable, fd, stream)

    def _on_readable(self, fd: int, stream: str) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._eof(fd, stream)
            return
        self.write(stream, data)

    def _eof(self, fd: int, stream: str) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)
        self._open_fds.discard(fd)
        rest = self._partial.pop(stream, b"")
        if rest:
            self._record(stream, b"F", rest)
        if not self._open_fds:
            self.close()

    def write(self, stream: str, data: bytes) -> None:
        """Append `data` from `stream`, one record per complete line (one write per chunk)."""
        for listener in list(self.listeners):
            listener(stream, data)
        buf = self._partial.get(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        items = [(b"F", line) for line in lines]
        while len(rest) > MAX_LINE:
            items.append((b"P", rest[:MAX_LINE]))
            rest = rest[MAX_LINE:]
        self._partial[stream] = rest
        self._emit(stream, items)
        self._changed.set()

    def _record(self, stream: str, tag: bytes, message: bytes) -> None:
        self._emit(stream, [(tag, message)])

    def _emit(self, stream: str, items: list[tuple[bytes, bytes]]) -> None:
        if self._file.closed or not items:
            return
        prefix = now_rfc3339_nano().encode() + b" " + stream.encode() + b" "
        out = bytearray()
        for tag, message in items:
            rec = prefix + tag + b" " + message + b"\n"
            out += rec
            self._size += len(rec)
            if self._size >= self.max_bytes:
                if not self._flush(out):
                    return
                out.clear()
                self._rotate()
        self._flush(out)

    def _flush(self, out: bytearray) -> bool:
        if not out:
            return True
        try:
            self._file.write(out)
            self._file.flush()
        except (OSError, ValueError):
            self._file.close()
            return False
        return True

    def _rotate(self) -> None:
        self._file.close()
        for i in range(self.max_files - 1, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i}"))
        if self.max_files == 1:
            self.path.unlink(missing_ok=True)
        self._file = open(self.path, "ab")
        self._size = 0

    def close(self) -> None:
        """Stop capturing (pipes still open are detached and closed)."""
        loop = asyncio.get_running_loop()
        for fd in list(self._open_fds):
            loop.remove_reader(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open_fds.clear()
        for stream, rest in list(self._partial.items()):
            if rest:
                self._record(stream, b"F", rest)
        self._partial.clear()
        if not self._file.closed:
            self._file.close()
        self.closed.set()
        self._changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Wait until new output arrives or capture ends (or `timeout` seconds pass)."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)


class LogSource(Protocol):
    """A running instance's log file as `kubectl logs -f` follows it (`LogSink`, or a file
    another process writes, such as podman's conmon)."""

    @property
    def path(self) -> Path: ...
    @property
    def closed(self) -> asyncio.Event: ...
    async def wait_changed(self, timeout: float) -> None: ...


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What `kubectl logs` asks for (query parameters of pods/log)."""

    timestamps: bool = False
    tail_lines: int | None = None  # None = all
    since_seconds: float | None = None
    since_time: str | None = None  # RFC 3339
    limit_bytes: int | None = None


def instance_files(path: Path) -> list[Path]:
    """The files of one instance, oldest first (rotated ones, then the current one)."""
    rotated = sorted(
        (p for p in path.parent.glob(path.name + ".*") if p.suffix.lstrip(".").isdigit()),
        key=lambda p: -int(p.suffix.lstrip(".")),
    )
    return [*rotated, path] if path.exists() else rotated


def _parse(line: bytes) -> tuple[str, str, bool, bytes] | None:
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    message = parts[3] if len(parts) == 4 else b""
    ts = parts[0].decode()
    if ts.endswith("+00:00"):  # conmon's k8s-file writes the offset; the kubelet's files say Z
        ts = ts[:-6] + "Z"
    return ts, parts[1].decode(), parts[2] == b"F", message


def _cutoff(opts: LogOptions) -> str | None:
    if opts.since_seconds is not None:
        return now_rfc3339_nano(time.time() - opts.since_seconds)
    if opts.since_time:
        since = parse_time(opts.since_time)
        if since is None:
            raise ValueError(f"sinceTime: not an RFC 3339 time: {opts.since_time!r}")
        return now_rfc3339_nano(since)
    return None


def _render(ts: str, message: bytes, complete: bool, opts: LogOptions) -> bytes:
    prefix = ts.encode() + b" " if opts.timestamps else b""
    return prefix + message + (b"\n" if complete else b"")


def read_lines(path: Path, opts: LogOptions) -> tuple[list[bytes], int]:
    """The rendered lines of one instance honouring tail/since, and the byte offset read up to
    in the current file (where a follower continues)."""
    cutoff = _cutoff(opts)
    out: list[bytes] = []
    offset = 0
    for file in instance_files(path):
        try:
            data = file.read_bytes()
        except OSError:
            continue
        if file == path:
            offset = len(data)
        for raw in data.splitlines():
            rec = _parse(raw)
            if rec is None or (cutoff is not None and rec[0] < cutoff):
                continue
            out.append(_render(rec[0], rec[3], rec[2], opts))
    if opts.tail_lines is not None:
        out = out[-opts.tail_lines :] if opts.tail_lines > 0 else []
    return out, offset


async def follow_log(path: Path, sink: LogSource | None, opts: LogOptions) -> AsyncIterator[bytes]:
    """Yield the log's existing lines, then new ones as they are written, until the instance
    stops (`sink` closed; None = the instance is not running, so only existing lines)."""
    lines, offset = read_lines(path, opts)
    sent = 0
    for line in lines:
        yield line
        sent += len(line)
    plain = LogOptions(timestamps=opts.timestamps)
    buf = b""
    while sink is not None:
        done = sink.closed.is_set()
        chunk, offset = _read_from(path, offset)
        if chunk:
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                rec = _parse(raw)
                if rec is not None:
                    yield _render(rec[0], rec[3], rec[2], plain)
        if done:
            break
        await sink.wait_changed(1.0)


def _read_from(path: Path, offset: int) -> tuple[bytes, int]:
    """New bytes of `path` past `offset` and the new offset (0 again if the file was rotated)."""
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < offset:
                offset = 0  # rotated under us: continue from the new file's start
            fh.seek(offset)
            chunk = fh.read(size - offset)
    except OSError:
        return b"", offset
    return chunk, offset + len(chunk)


def prune_instances(container_dir: Path, keep: set[int]) -> None:
    """Delete the log files of instances (restart counts) not in `keep`."""
    for p in container_dir.glob("*.log*"):
        head = p.name.split(".", 1)[0]
        if head.isdigit() and int(head) not in keep:
            p.unlink(missing_ok=True)
