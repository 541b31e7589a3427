"""Choosing the container runtimes: `--container-runtime process|podman|auto`, and per pod by
its RuntimeClass handler.

A node offers two handlers (Kubernetes' RuntimeClass `handler`, the CRI's runtime handler):
`process` (always: local processes, no images) and `podman` (OCI images; needs the netns pod
network and a podman that can start a container). `--container-runtime` picks the default one,
used by pods without `runtimeClassName`: `auto` (the default of `podns up` and `podns node`)
picks podman when the pod network is netns (root) and podman can start a container on this
machine, else the process runtime; the reason is kept for `podns up`'s summary and the agent's
log. An explicit `podman` that cannot work is not a start-up failure: the agent runs with an
`UnavailableRuntime` whose pods wait with the reason (CreateContainerError) and whose Node says
the runtime is down, so the rest keeps serving. With the process default, podman is detected
when a pod first asks for it (detection runs a trial container: seconds), or at start when this
data dir ran podman containers before (its leftovers are removed then).

`Runtimes.for_handler` raises UnknownHandler for any other handler, worded as containerd words
it; the agent reports it as the kubelet does (FailedCreatePodSandBox).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from podns.node.runtime.base import (
    ContainerConfig,
    ContainerRuntime,
    ContainerWaiting,
    ExecSpec,
    Instance,
    StartError,
)
from podns.node.runtime.podman import PULL_TIMEOUT, PodmanRuntime, PodmanUnavailable
from podns.node.runtime.process import ProcessRuntime

CHOICES = ("auto", "process", "podman")
#: the RuntimeClass handlers a node serves
HANDLERS = ("process", "podman")
#: made in the agent's data dir once podman ran containers there (their leftovers are removed at
#: the next start even when podman is not the default)
PODMAN_MARK = "podman-containers"


class UnknownHandler(Exception):
    """A RuntimeClass handler this node does not serve (the message is containerd's)."""

    def __init__(self, handler: str) -> None:
        super().__init__(f'failed to get sandbox runtime: no runtime for "{handler}" is configured')


class UnavailableRuntime:
    """The runtime asked for cannot run here: every container waits with `why`."""

    host_mount_points = False
    images = True

    def __init__(self, name: str, why: str) -> None:
        self.name = name
        self.why = why

    def _refuse(self) -> ContainerWaiting:
        return ContainerWaiting("CreateContainerError",
                                f"container runtime {self.name} is unavailable: {self.why}")

    async def ensure_image(self, config: ContainerConfig) -> None:
        raise self._refuse()

    async def start(self, config: ContainerConfig) -> Instance:
        raise self._refuse()

    def exec_spec(self, pod: dict[str, object], container_name: str, command: list[str], *,
                  tty: bool = False, stdin: bool = False) -> ExecSpec:
        raise StartError(f"container {container_name} is not running", reason="NotRunning")

    async def clean_leftovers(self) -> int:
        return 0

    def checkpoint(self) -> None:
        """Nothing runs, nothing to record."""

    async def close(self) -> None:
        """Nothing held."""


async def _podman(*, pod_network: str, data_dir: Path, node: str, oci_runtime: str | None,
                  pull_timeout: float) -> PodmanRuntime | str:
    """A working podman runtime, or why there is none."""
    if pod_network != "netns":
        return "podman containers join the pod's network namespace: it needs --pod-network netns"
    try:
        return await PodmanRuntime.create(data_dir=data_dir, node=node, oci_runtime=oci_runtime,
                                          pull_timeout=pull_timeout)
    except PodmanUnavailable as exc:
        return str(exc)


def runtime_version(runtime: ContainerRuntime) -> str:
    """The Node's `nodeInfo.containerRuntimeVersion` (`podman://<version>`; the process runtime
    is podns's own)."""
    if isinstance(runtime, PodmanRuntime):
        return f"podman://{runtime.setup.version}"
    return f"{runtime.name}://0.1.0" if runtime.name == "podman" else "podns://0.1.0"


class Runtimes:
    """The node's runtimes by handler: `process` always, `podman` when usable; `default` serves
    pods without a RuntimeClass (see the module docstring). `start` first, `close` last."""

    def __init__(self, *, pod_network: str, data_dir: Path, node: str, oci_runtime: str | None = None,
                 pull_timeout: float = PULL_TIMEOUT) -> None:
        self.pod_network = pod_network
        self.data_dir = data_dir
        self.node = node
        self.oci_runtime = oci_runtime
        self.pull_timeout = pull_timeout
        self.process = ProcessRuntime(data_dir / "pids")
        self.default: ContainerRuntime = self.process
        self.reason = "process"
        self._podman: PodmanRuntime | UnavailableRuntime | None = None  # once known
        self._podman_lock = asyncio.Lock()
        #: podman containers of a previous run removed when podman was detected
        self.podman_leftovers = 0

    async def start(self, kind: str) -> int:
        """Pick the default for `kind` (one of CHOICES) and remove what a previous run of this
        agent left in every runtime known now; returns how many leftovers were removed."""
        removed = await self.process.clean_leftovers()
        if kind == "process":
            self.reason = "process (--container-runtime process)"
            if self.pod_network == "netns" and (self.data_dir / PODMAN_MARK).is_dir():
                await self.podman()  # removes its leftovers
            return removed + self.podman_leftovers
        if kind == "auto" and self.pod_network != "netns":
            self.reason = "process (auto: the loopback pod network runs local processes)"
            return removed
        podman = await self.podman()
        if isinstance(podman, PodmanRuntime):
            how = ("--container-runtime podman" if kind == "podman"
                   else "auto: netns pod network and podman works")
            self.default, self.reason = podman, f"podman ({how}; {podman.setup.describe()})"
        elif kind == "podman":
            self.default, self.reason = podman, f"podman unavailable: {podman.why}"
        else:
            self.reason = f"process (auto: {podman.why})"
        return removed + self.podman_leftovers

    async def podman(self) -> PodmanRuntime | UnavailableRuntime:
        """The podman runtime, detected now when nobody asked before (UnavailableRuntime when
        podman cannot run containers here); what a previous run left is removed first."""
        async with self._podman_lock:
            if self._podman is None:
                runtime = await _podman(pod_network=self.pod_network, data_dir=self.data_dir,
                                        node=self.node, oci_runtime=self.oci_runtime,
                                        pull_timeout=self.pull_timeout)
                if isinstance(runtime, str):
                    self._podman = UnavailableRuntime("podman", runtime)
                else:
                    (self.data_dir / PODMAN_MARK).mkdir(parents=True, exist_ok=True)
                    self.podman_leftovers = await runtime.clean_leftovers()
                    self._podman = runtime
            return self._podman

    async def for_handler(self, handler: str) -> ContainerRuntime:
        """The runtime of a RuntimeClass `handler` ("": the default); UnknownHandler when this
        node has none of that name."""
        if not handler:
            return self.default
        if handler == "process":
            return self.process
        if handler == "podman":
            return await self.podman()
        raise UnknownHandler(handler)

    def known(self) -> list[ContainerRuntime]:
        """The runtimes made so far (for checkpoints and shutdown)."""
        return [self.process, *([self._podman] if self._podman is not None else [])]

    async def close(self) -> None:
        """Close every runtime made (each waits for what it still has in flight)."""
        for runtime in self.known():
            await runtime.close()
