"""Choosing the container runtime: `--container-runtime process|podman|auto`.

`auto` (the default of `podns up` and `podns node`) picks podman when the pod network is netns
(root) and podman can start a container on this machine, else the process runtime; the reason is
kept for `podns up`'s summary and the agent's log. An explicit `podman` that cannot work is not a
start-up failure: the agent runs with an `UnavailableRuntime` whose pods wait with the reason
(CreateContainerError) and whose Node says the runtime is down, so the rest keeps serving.
"""

from __future__ import annotations

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


async def select(kind: str, *, pod_network: str, data_dir: Path, node: str,
                 oci_runtime: str | None = None,
                 pull_timeout: float = PULL_TIMEOUT) -> tuple[ContainerRuntime, str]:
    """The runtime for `kind` (one of CHOICES) and why it was chosen (one line)."""
    if kind == "process":
        return ProcessRuntime(data_dir / "pids"), "process (--container-runtime process)"
    if pod_network != "netns":
        if kind == "podman":
            why = "podman containers join the pod's network namespace: it needs --pod-network netns"
            return UnavailableRuntime("podman", why), f"podman unavailable: {why}"
        why = "auto: the loopback pod network runs local processes"
        return ProcessRuntime(data_dir / "pids"), f"process ({why})"
    try:
        runtime = await PodmanRuntime.create(data_dir=data_dir, node=node, oci_runtime=oci_runtime,
                                             pull_timeout=pull_timeout)
    except PodmanUnavailable as exc:
        if kind == "podman":
            return UnavailableRuntime("podman", str(exc)), f"podman unavailable: {exc}"
        return ProcessRuntime(data_dir / "pids"), f"process (auto: {exc})"
    how = "--container-runtime podman" if kind == "podman" else "auto: netns pod network and podman works"
    return runtime, f"podman ({how}; {runtime.setup.describe()})"


def runtime_version(runtime: ContainerRuntime) -> str:
    """The Node's `nodeInfo.containerRuntimeVersion` (`podman://<version>`; the process runtime
    is podns's own)."""
    if isinstance(runtime, PodmanRuntime):
        return f"podman://{runtime.setup.version}"
    return f"{runtime.name}://0.1.0" if runtime.name == "podman" else "podns://0.1.0"
