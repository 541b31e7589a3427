"""Container runtimes of the node agent: the seam (`base`) and its implementations.

`process` runs a container as a local process (no images; any user, loopback or netns pod
network); `podman` runs OCI images through podman (root, netns pod network). The agent holds one
`ContainerRuntime` and never looks behind it.
"""

from podns.node.logs import LogSource
from podns.node.runtime.base import (
    ContainerConfig,
    ContainerRuntime,
    ContainerWaiting,
    ExecSpec,
    ImagePullError,
    Instance,
    StartError,
    exit_code,
)
from podns.node.runtime.process import Process, ProcessRuntime, kill_recorded, record, start

__all__ = [
    "ContainerConfig", "ContainerRuntime", "ContainerWaiting", "ExecSpec", "ImagePullError", "Instance",
    "LogSource", "Process", "ProcessRuntime", "StartError", "exit_code", "kill_recorded", "record", "start",
]
