"""The container runtime seam: what the node agent asks of a runtime, whatever runs the containers.

The kubelet talks to its runtime through the CRI; podns's agent talks to a `ContainerRuntime`:
prepare a container's image (`ensure_image`), start one instance of a container (`start`, giving
an `Instance` to wait for and stop), describe how to run a command inside a running container
(`exec_spec`: exec probes, hooks, `kubectl exec`), and clean up what a previous agent run left
behind (`clean_leftovers`) or write down what runs now (`checkpoint`).

Two runtimes implement it: `process` (a container instance is a local process; no images) and
`podman` (OCI images run by podman, joining the pod's network namespace the agent made).

Error contract: `start` raises `StartError` (the instance could not be started: terminated with
exit code 128, as the kubelet reports runc's failure) or `ContainerWaiting` (the container cannot
be created yet: Waiting with the reason, retried later); `ensure_image` raises `ImagePullError`
(Waiting with ErrImagePull, InvalidImageName or ErrImageNeverPull; retried with the image back-off).
Nothing else escapes either for anything a pod spec or an image does.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from podns.node.logs import LogSource
from podns.node.sandbox import Mount, Sandbox

Obj = dict[str, Any]

#: `event(type, reason, message)`: an Event about the container (its field path is the caller's)
EventFn = Callable[[str, str, str], None]


class StartError(Exception):
    """The container's process could not be started (kubelet reason `StartError`, exit code 128)."""

    def __init__(self, message: str, reason: str = "StartError") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ContainerWaiting(Exception):
    """The container cannot be created now (Waiting with `reason`, e.g. CreateContainerError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ImagePullError(ContainerWaiting):
    """The image is not there and could not be pulled (ErrImagePull, InvalidImageName,
    ErrImageNeverPull); the runner retries with the image back-off (ImagePullBackOff)."""


async def wait_pid(pid: int) -> None:
    """Until process `pid` exits (a pidfd: for processes that are not our children, such as a
    container's conmon, and for children whose reaping is not the signal wanted). Returns at once
    when it is already gone; other OSErrors (no pidfd on Linux < 5.3) are the caller's."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    loop = asyncio.get_running_loop()
    gone: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not gone.done():
            gone.set_result(None)

    loop.add_reader(fd, readable)
    try:
        await gone
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def exit_code(returncode: int) -> int:
    """Kubernetes' exit code: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass(frozen=True, slots=True)
class ExecSpec:
    """How to run a command inside a running container: `argv` with `env` in `cwd`, and, for the
    process runtime in namespace mode, the `sandbox` the child enters before exec (its cwd and
    user apply then). `argv` is complete: for podman it is `podman exec ... <container> cmd...`."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    sandbox: Sandbox | None = None


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """One instance of one container, as the runner hands it to the runtime.

    `command`/`args` are the spec's with `$(VAR)` expanded; None when the spec does not set them
    (podman then keeps the image's ENTRYPOINT/CMD; the process runtime has nothing to run).
    `cwd` is where the process runtime starts the process (workingDir, else the pod's work dir);
    `working_dir` is the spec's own (podman: None keeps the image's WORKDIR). `mounts` are the
    container's volumes at their mountPaths; `sandbox` is the process runtime's namespace-mode
    sandbox (None in loopback mode and for hostNetwork pods); `netns_path` the pod's network
    namespace (empty: the host's network, hostNetwork pods)."""

    pod: Obj
    spec: Obj
    name: str
    init: bool
    attempt: int
    command: list[str] | None
    args: list[str] | None
    env: dict[str, str]
    cwd: str
    working_dir: str | None
    log_path: str
    user: int | None = None
    group: int | None = None
    groups: tuple[int, ...] = ()  # supplementary groups: fsGroup, supplementalGroups
    sandbox: Sandbox | None = None
    netns_path: str = ""
    pod_ip: str = ""
    hostname: str = ""
    resolv_conf: str = ""
    hosts: str = ""  # the pod's /etc/hosts made by the agent ("" when there is none)
    mounts: tuple[Mount, ...] = ()
    event: EventFn = field(default=lambda etype, reason, message: None)

    @property
    def pod_uid(self) -> str:
        return str((self.pod.get("metadata") or {}).get("uid", ""))

    @property
    def argv(self) -> list[str]:
        """command + args (what the process runtime runs)."""
        return [*(self.command or []), *(self.args or [])]


class Instance(Protocol):
    """One started container instance. `wait()` returns its Kubernetes exit code."""

    container_id: str  # "<runtime>://<id>", as containerStatuses[].containerID
    image: str  # the image as the runtime names it ("" for the process runtime)
    image_id: str  # the image's ID/digest ("" for the process runtime)
    started_at: float
    finished_at: float | None
    exit_code: int | None
    @property
    def log(self) -> LogSource | None: ...  # read-only here: each runtime keeps its own log type
    reason: str  # why it ended, when the runtime knows more than the exit code (OOMKilled)

    @property
    def running(self) -> bool: ...
    async def wait(self) -> int: ...
    async def stop(self, grace: float, sig: int = signal.SIGTERM) -> int: ...
    def exec_spec(self, command: list[str], *, tty: bool = False, stdin: bool = False) -> ExecSpec: ...


class ContainerRuntime(Protocol):
    """What the node agent needs from a container runtime (see the module docstring)."""

    name: str  # "process" or "podman"
    #: the host must create missing mountPaths on its own file system (the process runtime's
    #: sandboxes share it); podman mounts into the image's root file system instead
    host_mount_points: bool
    #: runs OCI images: the image brings its own root file system and environment (PATH...), so
    #: the container gets only its spec's variables, not the agent's PATH
    images: bool

    async def ensure_image(self, config: ContainerConfig) -> None: ...
    async def start(self, config: ContainerConfig) -> Instance: ...
    def exec_spec(self, pod: Obj, container_name: str, command: list[str], *, tty: bool = False,
                  stdin: bool = False) -> ExecSpec: ...
    async def clean_leftovers(self) -> int: ...
    def checkpoint(self) -> None: ...
    async def close(self) -> None: ...


class InstanceIndex:
    """The running instances by (pod uid, container name): what `exec_spec` looks up."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str], Instance] = {}

    def add(self, config: ContainerConfig, instance: Instance) -> None:
        self._by_key[(config.pod_uid, config.name)] = instance

    def discard(self, config: ContainerConfig, instance: Instance) -> None:
        if self._by_key.get((config.pod_uid, config.name)) is instance:
            del self._by_key[(config.pod_uid, config.name)]

    def running(self) -> list[Instance]:
        return [i for i in self._by_key.values() if i.running]

    def exec_spec(self, pod: Obj, container_name: str, command: list[str], *, tty: bool,
                  stdin: bool) -> ExecSpec:
        """The running instance's `exec_spec`; StartError when the container is not running."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        instance = self._by_key.get((uid, container_name))
        if instance is None or not instance.running:
            raise StartError(f"container {container_name} is not running", reason="NotRunning")
        return instance.exec_spec(command, tty=tty, stdin=stdin)
