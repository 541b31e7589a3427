"""Podman runtime: containers from OCI images, run by podman inside the pod's network namespace.

Each container instance is one podman container (`podman run -d`), named as the kubelet's
dockershim named them (`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`) and labelled with the
agent that owns it (`io.podns.agent`: a hash of the agent's data dir), its node, pod and
container. The pod's network namespace, host name and resolv.conf are the agent's
(`--network ns:<path>`, `--hostname`, the agent's resolv.conf bind-mounted), so the pod IP, the
cluster DNS, the search path and ndots:5 are what they are under the process runtime; volumes are
bind mounts at their mountPaths; output goes through conmon's `k8s-file` log driver straight into
the CRI-format file `kubectl logs` reads.

Image semantics are Kubernetes': `command` replaces the ENTRYPOINT, `args` the CMD, neither keeps
the image's own; the reference is normalised (`podns.objects.images`) before podman sees it, so
podman's short-name rules never apply; `imagePullPolicy` decides whether `podman pull` runs.

The exit of a container is watched without a process per container: a pidfd on its conmon
(which outlives the container until the exit code is recorded), then one `podman inspect`.
Stopping is the kubelet's: the image's StopSignal (SIGTERM by default) to PID 1, the grace
period, SIGKILL. A container whose instance ended is removed at once (its log file stays).

Crash safety: containers outlive an agent killed with SIGKILL (conmon is not its child); the
agent started again removes every container labelled with its own id (`clean_leftovers`) before
starting the pods again, as the process runtime kills its recorded process groups.

Machine quirks handled here, found on the project's own machines: podman's default ulimits can
exceed what an agent without CAP_SYS_RESOURCE may set, so containers get the agent's own limits
(capped at what podman itself runs with); the OCI runtime podman picks may not work (crun refuses
hybrid cgroups): `detect` runs a trial container and tries runc when the default fails, unless
`--oci-runtime` names one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import tarfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from podns.node.runtime.base import (
    ContainerConfig,
    ContainerWaiting,
    ExecSpec,
    ImagePullError,
    Instance,
    InstanceIndex,
    StartError,
    wait_pid,
)
from podns.objects import images, join_key, name_of, namespace_of
from podns.objects.quantity import parse_quantity

log = logging.getLogger(__name__)
Obj = dict[str, Any]

LABEL_AGENT = "io.podns.agent"
LABEL_NODE = "io.podns.node"
LABEL_POD = "io.podns.pod"
LABEL_POD_UID = "io.podns.pod-uid"
LABEL_CONTAINER = "io.podns.container"
#: a pull slower than this fails with ErrImagePull (the dockershim's progress deadline was 1 min
#: without progress; a whole pull of a large image over a slow link needs more)
PULL_TIMEOUT = 300.0
#: any other podman command (run, inspect, kill, rm) that takes longer than this failed
COMMAND_TIMEOUT = 60.0
#: how long an exited container's state may lag behind its conmon's exit
EXIT_STATE_WAIT = 5.0
#: the empty image of `detect`'s trial container (an empty tar imported; no registry needed)
PROBE_IMAGE = "localhost/podns-runtime-probe:1"
PROBE_COMMAND = "/podns-runtime-probe"
#: podman (4.x) runs conmon with at most this RLIMIT_NPROC and 2^20 open files; a container's
#: limit above its conmon's fails with EPERM when the agent lacks CAP_SYS_RESOURCE
PODMAN_NPROC_CAP = 32768
PODMAN_NOFILE_CAP = 1 << 20
#: kubelet defaults for a container's log file (containerLogMaxSize)
LOG_MAX_SIZE = "10mb"


class PodmanUnavailable(Exception):
    """podman cannot run containers here; the message says why (for the Node and the pods)."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """podman's own message (its last stderr line, without the `Error: ` prefix)."""
        lines = [ln for ln in self.stderr.strip().splitlines() if ln.strip()]
        text = lines[-1] if lines else f"podman exited with {self.returncode}"
        return text.removeprefix("Error: ")


async def run_podman(argv: list[str], *, timeout: float = COMMAND_TIMEOUT,
                     env: dict[str, str] | None = None) -> CommandResult:
    """Run `argv` (podman and its arguments) to completion, with `env` (None: the agent's); a
    timeout or a missing binary is a result with returncode -1 and the reason in stderr, never
    an exception."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True, env=env)
    except OSError as exc:
        return CommandResult(-1, "", f"{argv[0]}: {exc.strerror or exc}")
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return CommandResult(-1, "", f"{' '.join(argv[:3])}: timed out after {timeout:g}s")
    return CommandResult(proc.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def agent_id(data_dir: Path) -> str:
    """The label value that marks an agent's containers: its data dir, hashed."""
    return hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]


def own_ulimits() -> list[str]:
    """`--ulimit` flags with this process's own open-files and processes limits (capped at
    podman's), so that runc never has to raise a limit."""
    out = []
    for name, res, cap in (("nofile", resource.RLIMIT_NOFILE, PODMAN_NOFILE_CAP),
                           ("nproc", resource.RLIMIT_NPROC, PODMAN_NPROC_CAP)):
        soft, hard = resource.getrlimit(res)
        hard = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
        out += ["--ulimit", f"{name}={soft}:{hard}"]
    return out


@dataclass(frozen=True, slots=True)
class PodmanSetup:
    """What `detect` found working: podman's path and version, the OCI runtime to name (None:
    podman's default works), the ulimit flags, and whether cgroup limits can be set."""

    podman: str
    version: str
    oci_runtime: str | None
    ulimits: tuple[str, ...]
    limits_supported: bool
    runtime_name: str = ""

    @property
    def base(self) -> list[str]:
        """podman with its global flags."""
        return [self.podman, *(["--runtime", self.oci_runtime] if self.oci_runtime else [])]

    def describe(self) -> str:
        oci = self.oci_runtime or self.runtime_name or "its default OCI runtime"
        return f"podman {self.version} with {oci}"


async def _probe_image(podman: str, scratch: Path) -> None:
    """Make sure the empty trial image exists (an empty tar imported: no registry involved)."""
    if (await run_podman([podman, "image", "exists", PROBE_IMAGE])).returncode == 0:
        return
    tar = scratch / "empty.tar"

    def write_empty_tar() -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar, "w"):
            pass

    await asyncio.to_thread(write_empty_tar)
    res = await run_podman([podman, "import", "-q", str(tar), PROBE_IMAGE])
    if res.returncode != 0:
        raise PodmanUnavailable(f"podman cannot import an image: {res.error}")


async def _trial(base: list[str], ulimits: list[str], extra: list[str], owner: str) -> CommandResult:
    """A container of the empty image whose command does not exist: reaching the exec step
    proves the OCI runtime, cgroups, mounts and rlimits work."""
    return await run_podman([*base, "run", "--rm", "--network", "none", "--label", f"{LABEL_AGENT}={owner}",
                             *ulimits, *extra, PROBE_IMAGE, PROBE_COMMAND])


def _reached_exec(res: CommandResult) -> bool:
    return f'"{PROBE_COMMAND}"' in res.stderr


async def detect(*, oci_runtime: str | None, scratch: Path, owner: str) -> PodmanSetup:
    """Check that podman runs containers here and find the settings that work (see the module
    docstring). Raises PodmanUnavailable with the reason."""
    podman = shutil.which("podman")
    if podman is None:
        raise PodmanUnavailable("podman is not installed (apt-get install podman runc)")
    res = await run_podman([podman, "version", "--format", "{{.Client.Version}}"])
    if res.returncode != 0:
        raise PodmanUnavailable(f"podman does not work: {res.error}")
    version = res.stdout.strip()
    info = await run_podman([podman, "info", "--format", "{{.Host.OCIRuntime.Name}}"])
    default_name = info.stdout.strip() if info.returncode == 0 else ""
    await _probe_image(podman, scratch)
    candidates: list[str | None] = [oci_runtime] if oci_runtime else [None]
    if not oci_runtime and default_name != "runc" and shutil.which("runc"):
        candidates.append("runc")  # crun refuses hybrid cgroup hierarchies; runc copes
    ulimit_sets = [own_ulimits(), ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]]
    failures = []
    for runtime_name in candidates:
        base = [podman, *(["--runtime", runtime_name] if runtime_name else [])]
        for ulimits in ulimit_sets:
            res = await _trial(base, ulimits, [], owner)
            if _reached_exec(res):
                limited = await _trial(base, ulimits, ["--memory", "64m", "--cpus", "0.5"], owner)
                return PodmanSetup(podman=podman, version=version, oci_runtime=runtime_name,
                                   ulimits=tuple(ulimits), limits_supported=_reached_exec(limited),
                                   runtime_name=runtime_name or default_name)
            failures.append(f"{runtime_name or default_name or 'default'}: {res.error}")
    raise PodmanUnavailable("podman cannot start a container here (" + "; ".join(failures[:3]) + ")")


# -- images ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the runtime needs of a local image."""

    ref: str
    image_id: str  # as containerStatuses[].imageID: a repo digest, else sha256:<id>
    size: int
    user: str
    stop_signal: str

    @classmethod
    def from_inspect(cls, ref: str, data: Obj) -> ImageInfo:
        config = data.get("Config") or {}
        digests = [d for d in data.get("RepoDigests") or [] if isinstance(d, str)]
        same_repo = [d for d in digests if d.split("@", 1)[0] == ref.rsplit(":", 1)[0]]
        image_id = (same_repo or digests or [f"sha256:{data.get('Id', '')}"])[0]
        return cls(ref=ref, image_id=image_id, size=int(data.get("Size") or 0),
                   user=str(config.get("User") or ""), stop_signal=str(config.get("StopSignal") or ""))


def _signal_number(name: str) -> int:
    """`SIGQUIT`, `QUIT` or `3` as a number; SIGTERM when unknown (the kubelet's default)."""
    text = name.strip().upper()
    if text.isdigit():
        return int(text)
    with contextlib.suppress(KeyError):
        return int(signal.Signals[text if text.startswith("SIG") else "SIG" + text])
    return int(signal.SIGTERM)


# -- the command line of one container -----------------------------------------------------------------


def container_name(config: ContainerConfig) -> str:
    """The dockershim's name: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>."""
    meta = config.pod.get("metadata") or {}
    return (f"k8s_{config.name}_{meta.get('name', '')}_{meta.get('namespace', 'default')}_"
            f"{meta.get('uid', '')}_{config.attempt}")


def _security_flags(config: ContainerConfig) -> list[str]:
    pod_sc = (config.pod.get("spec") or {}).get("securityContext") or {}
    sc = config.spec.get("securityContext") or {}
    out: list[str] = []
    user = sc.get("runAsUser", pod_sc.get("runAsUser"))
    group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
    if user is not None:
        out += ["--user", f"{int(user)}:{int(group)}" if group is not None else str(int(user))]
    elif group is not None:
        out += ["--group-add", str(int(group))]
    for gid in pod_sc.get("supplementalGroups") or []:
        out += ["--group-add", str(int(gid))]
    if pod_sc.get("fsGroup") is not None:
        out += ["--group-add", str(int(pod_sc["fsGroup"]))]
    if sc.get("readOnlyRootFilesystem"):
        out += ["--read-only", "--read-only-tmpfs=false"]
    if sc.get("privileged"):
        out.append("--privileged")
    caps = sc.get("capabilities") or {}
    for cap in caps.get("add") or []:
        out += ["--cap-add", str(cap)]
    for cap in caps.get("drop") or []:
        out += ["--cap-drop", str(cap)]
    if sc.get("allowPrivilegeEscalation") is False:
        out += ["--security-opt", "no-new-privileges"]
    return out


def _limit_flags(config: ContainerConfig) -> list[str]:
    limits = ((config.spec.get("resources") or {}).get("limits")) or {}
    out: list[str] = []
    with contextlib.suppress(ValueError, ArithmeticError):
        if limits.get("memory") is not None:
            out += ["--memory", str(int(parse_quantity(limits["memory"])))]
        if limits.get("cpu") is not None:
            cpus = parse_quantity(limits["cpu"])
            if cpus > 0:
                out += ["--cpus", str(max(cpus, Decimal("0.01")))]
    return out


#: variables podman itself reads: their values go on the command line, never into its environment
_PODMAN_OWN = frozenset({"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "NOTIFY_SOCKET",
                         "DBUS_SESSION_BUS_ADDRESS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                         "http_proxy", "https_proxy", "no_proxy"})


def _by_environment(key: str) -> bool:
    """Whether the container's variable `key` reaches podman through its environment (`--env KEY`:
    the value, a Secret's perhaps, stays off the command line other users can read in /proc)
    rather than as `--env KEY=VALUE`."""
    return (key not in _PODMAN_OWN and not key.startswith(("CONTAINERS_", "XDG_", "STORAGE_", "REGISTRY_",
                                                            "BUILDAH_", "PODMAN_", "LD_", "_"))
            and key.replace("_", "").isalnum())


def run_env(config: ContainerConfig) -> dict[str, str]:
    """The environment of `podman run` for `config`: the agent's, plus the container's variables
    that `run_args` names without their value."""
    return {**os.environ, **{k: v for k, v in config.env.items() if _by_environment(k)}}


def run_args(config: ContainerConfig, image: ImageInfo, *, owner: str, node: str, ulimits: list[str],
             limits: bool) -> list[str]:
    """The `podman run -d` arguments (after podman's global flags) of one instance: pure, so the
    translation of a container spec is testable without podman."""
    args = ["run", "-d", "--replace", "--pull", "never", "--name", container_name(config),
            "--label", f"{LABEL_AGENT}={owner}", "--label", f"{LABEL_NODE}={node}",
            "--label", f"{LABEL_POD}={join_key(namespace_of(config.pod) or 'default', name_of(config.pod))}",
            "--label", f"{LABEL_POD_UID}={config.pod_uid}", "--label", f"{LABEL_CONTAINER}={config.name}",
            "--log-driver", "k8s-file", "--log-opt", f"path={config.log_path}",
            "--log-opt", f"max-size={LOG_MAX_SIZE}", *ulimits]
    if config.netns_path:
        args += ["--network", f"ns:{config.netns_path}", "--hostname", config.hostname]
        if config.hosts:  # the agent's /etc/hosts of the pod (its FQDN on the pod IP)
            args += ["--volume", f"{config.hosts}:/etc/hosts:ro"]
        elif config.pod_ip:
            args += ["--add-host", f"{config.hostname}:{config.pod_ip}"]
        if config.resolv_conf:
            args += ["--volume", f"{config.resolv_conf}:/etc/resolv.conf:ro"]
    else:
        args += ["--network", "host"]  # hostNetwork pods
    for key in config.env:
        args += ["--env", key if _by_environment(key) else f"{key}={config.env[key]}"]
    for m in config.mounts:
        spec = f"type=bind,source={m.source},destination={m.target}"
        args += ["--mount", spec + (",readonly=true" if m.read_only else "")]
    if config.working_dir:
        args += ["--workdir", config.working_dir]
    args += _security_flags(config)
    if limits:
        args += _limit_flags(config)
    if config.command is not None:
        args += ["--entrypoint", json.dumps(config.command)]
    args.append(image.ref)
    if config.args is not None:
        args += config.args
    return args


def _runs_as_root(config: ContainerConfig, image: ImageInfo) -> str | None:
    """runAsNonRoot: why the container may not start (the kubelet's messages), else None."""
    pod_sc = (config.pod.get("spec") or {}).get("securityContext") or {}
    sc = config.spec.get("securityContext") or {}
    if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
        return None
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    if uid is None:
        user = image.user.split(":", 1)[0]
        if user and not user.isdigit() and user != "root":
            return (f"container has runAsNonRoot and image has non-numeric user ({user}), cannot verify "
                    "user is non-root")
        uid = 0 if user in ("", "root") else int(user)
    if int(uid) == 0:
        meta = config.pod.get("metadata") or {}
        return (f"container has runAsNonRoot and image will run as root (pod: "
                f"\"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})\", "
                f"container: {config.name})")
    return None


# -- instances ----------------------------------------------------------------------------------------


class ConmonLog:
    """A podman container's log file as `kubectl logs -f` follows it: conmon writes it, so new
    output is noticed by polling; `closed` is set when the container ended."""

    POLL = 0.2

    def __init__(self, path: Path) -> None:
        self.path = path
        self.closed = asyncio.Event()

    async def wait_changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), min(timeout, self.POLL))


class PodmanContainer:
    """One running podman container (an `Instance`)."""

    def __init__(self, runtime: PodmanRuntime, cid: str, image: ImageInfo, state: Obj,
                 log_path: Path) -> None:
        self.runtime = runtime
        self.id = cid
        self.container_id = f"podman://{cid}"
        self.image = image.ref
        self.image_id = image.image_id
        self.stop_signal = _signal_number(image.stop_signal or "SIGTERM")
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.exit_code: int | None = None
        self.reason = ""
        self.log = ConmonLog(log_path)
        loop = asyncio.get_running_loop()
        self._done: asyncio.Future[int] = loop.create_future()
        self._watch = loop.create_task(self._watch_exit(int(state.get("ConmonPid") or 0)),
                                       name=f"podman-wait-{cid[:12]}")

    @property
    def running(self) -> bool:
        return not self._done.done()

    async def _watch_exit(self, conmon_pid: int) -> None:
        """Wait for conmon to exit (a pidfd: no process of ours per container), read the exit
        code, remove the container."""
        try:
            if conmon_pid > 0:
                await wait_pid(conmon_pid)
            code, reason = await self.runtime.exit_state(self.id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # never leave a runner waiting forever
            log.warning("podman container %s: reading its exit failed: %s", self.id[:12], exc)
            code, reason = 137, "Error"
        self.finished_at = time.time()
        self.exit_code = code
        self.reason = reason
        self.log.closed.set()
        if not self._done.done():
            self._done.set_result(code)
        await self.runtime.remove(self.id)

    async def wait(self) -> int:
        return await asyncio.shield(self._done)

    async def kill(self, sig: int) -> None:
        if self.running:
            await run_podman([*self.runtime.setup.base, "kill", "--signal", str(int(sig)), self.id])

    async def stop(self, grace: float, sig: int | None = None) -> int:
        """The image's StopSignal (or `sig`) to PID 1, up to `grace` seconds, then SIGKILL."""
        if self.running:
            await self.kill(self.stop_signal if sig is None or sig == signal.SIGTERM else sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done), max(grace, 0.0))
        if self.running:
            await self.kill(signal.SIGKILL)
        return await self.wait()

    def exec_spec(self, command: list[str], *, tty: bool = False, stdin: bool = False) -> ExecSpec:
        """`podman exec` into this container: its environment, working directory and user."""
        flags = (["-i"] if stdin else []) + (["-t"] if tty else [])
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "TMPDIR", "XDG_RUNTIME_DIR")}
        return ExecSpec(argv=[*self.runtime.setup.base, "exec", *flags, self.id, *command], env=env)


# -- the runtime ------------------------------------------------------------------------------------


@dataclass
class PodmanRuntime:
    """The `ContainerRuntime` of OCI images through podman (see the module docstring).

    Made by `create` (which runs `detect`); `setup` is what was found working, `owner` the label
    value of this agent's containers, `node` its node name."""

    setup: PodmanSetup
    owner: str
    node: str
    pull_timeout: float = PULL_TIMEOUT
    name: str = "podman"
    host_mount_points: bool = False
    images: bool = True
    index: InstanceIndex = field(default_factory=InstanceIndex)
    _images: dict[str, ImageInfo] = field(default_factory=dict)
    _pulls: dict[str, asyncio.Lock] = field(default_factory=dict)
    _removals: set[asyncio.Task[CommandResult]] = field(default_factory=set)
    #: waits that drop an ended container from the index (kept: the loop holds tasks weakly)
    _forgetting: set[asyncio.Task[None]] = field(default_factory=set)
    _limits_reported: set[str] = field(default_factory=set)

    @classmethod
    async def create(cls, *, data_dir: Path, node: str, oci_runtime: str | None = None,
                     pull_timeout: float = PULL_TIMEOUT) -> PodmanRuntime:
        """Detect podman (raises PodmanUnavailable) and make the runtime for the agent whose
        state is in `data_dir`."""
        owner = agent_id(data_dir)
        setup = await detect(oci_runtime=oci_runtime, scratch=Path(data_dir) / "podman", owner=owner)
        return cls(setup=setup, owner=owner, node=node, pull_timeout=pull_timeout)

    def _podman(self, *args: str) -> list[str]:
        return [*self.setup.base, *args]

    # -- images ----------------------------------------------------------------------------------

    async def _inspect_image(self, ref: str) -> ImageInfo | None:
        res = await run_podman(self._podman("image", "inspect", "--format", "json", ref))
        if res.returncode != 0:
            return None
        try:
            data = json.loads(res.stdout)
        except ValueError:
            return None
        return ImageInfo.from_inspect(ref, data[0]) if isinstance(data, list) and data else None

    async def ensure_image(self, config: ContainerConfig) -> None:
        """The image of `config` present locally per its imagePullPolicy, with the kubelet's
        Events (Pulling, Pulled, Failed, ErrImageNeverPull). Raises ImagePullError."""
        image = str(config.spec.get("image") or "")
        try:
            ref = images.normalize(image)
        except images.InvalidReference as exc:
            config.event("Warning", "InspectFailed", str(exc))
            raise ImagePullError("InvalidImageName", str(exc)) from None
        policy = str(config.spec.get("imagePullPolicy") or images.default_pull_policy(image))
        lock = self._pulls.setdefault(ref, asyncio.Lock())
        async with lock:
            info = await self._inspect_image(ref)
            if policy == "Never" and info is None:
                message = f'Container image "{image}" is not present with pull policy of Never'
                config.event("Warning", "ErrImageNeverPull", message)
                raise ImagePullError("ErrImageNeverPull", message)
            if info is not None and policy != "Always":
                config.event("Normal", "Pulled", f'Container image "{image}" already present on machine')
                self._images[ref] = info
                return
            config.event("Normal", "Pulling", f'Pulling image "{image}"')
            began = time.monotonic()
            res = await run_podman(self._podman("pull", "--quiet", ref), timeout=self.pull_timeout)
            took = time.monotonic() - began
            info = await self._inspect_image(ref) if res.returncode == 0 else None
            if info is None:
                why = res.error if res.returncode != 0 else "the pulled image cannot be inspected"
                message = f"rpc error: code = Unknown desc = {why}"
                config.event("Warning", "Failed", f'Failed to pull image "{image}": {message}')
                raise ImagePullError("ErrImagePull", message)
            config.event("Normal", "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s '
                         f"({took:.3f}s including waiting). Image size: {info.size} bytes.")
            self._images[ref] = info

    # -- containers ------------------------------------------------------------------------------

    async def start(self, config: ContainerConfig) -> Instance:
        """`podman run -d` the instance (see `run_args`). Raises ContainerWaiting (no command,
        runAsNonRoot) or StartError (podman or the OCI runtime refused; the container is gone)."""
        ref = images.normalize(str(config.spec.get("image") or ""))
        image = self._images.get(ref) or await self._inspect_image(ref)
        if image is None:
            raise ContainerWaiting("ErrImagePull", f'image "{ref}" is not present')
        why = _runs_as_root(config, image)
        if why:
            raise ContainerWaiting("CreateContainerConfigError", why)
        limits = self.setup.limits_supported
        if not limits and _limit_flags(config) and config.pod_uid not in self._limits_reported:
            self._limits_reported.add(config.pod_uid)
            config.event("Warning", "LimitsNotEnforced",
                         "resources.limits are recorded but not enforced: this machine's cgroups do "
                         "not let podman set memory/cpu limits")
        Path(config.log_path).parent.mkdir(parents=True, exist_ok=True)
        argv = self._podman(*run_args(config, image, owner=self.owner, node=self.node,
                                      ulimits=list(self.setup.ulimits), limits=limits))
        res = await run_podman(argv, env=run_env(config))
        name = container_name(config)
        if res.returncode != 0:
            await self.remove(name)
            message = res.error
            if "no command or entrypoint provided" in message:
                raise ContainerWaiting("CreateContainerError",
                                       "failed to generate container spec: no command specified "
                                       "(the image has no ENTRYPOINT or CMD; set command)")
            raise StartError(message)
        cid = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else name
        state = await self._inspect_state(cid)
        container = PodmanContainer(self, cid, image, state, Path(config.log_path))
        self.index.add(config, container)
        task = asyncio.get_running_loop().create_task(self._forget(config, container), name=f"forget:{cid}")
        self._forgetting.add(task)
        task.add_done_callback(self._forgetting.discard)
        return container

    async def _forget(self, config: ContainerConfig, container: PodmanContainer) -> None:
        with contextlib.suppress(Exception):
            await container.wait()
        self.index.discard(config, container)

    async def _inspect_state(self, cid: str) -> Obj:
        res = await run_podman(self._podman("container", "inspect", "--format", "json", cid))
        try:
            data = json.loads(res.stdout) if res.returncode == 0 else []
        except ValueError:
            data = []
        return (data[0].get("State") or {}) if isinstance(data, list) and data else {}

    async def exit_state(self, cid: str) -> tuple[int, str]:
        """The exit code and reason (OOMKilled, else Completed/Error) of an ended container."""
        deadline = time.monotonic() + EXIT_STATE_WAIT
        while True:
            state = await self._inspect_state(cid)
            if not state:
                return 137, "Error"  # removed behind our back
            if state.get("Status") not in ("running", "stopping") or time.monotonic() > deadline:
                code = int(state.get("ExitCode") or 0)
                if state.get("OOMKilled"):
                    return code or 137, "OOMKilled"
                return code, "Completed" if code == 0 else "Error"
            await asyncio.sleep(0.1)

    async def remove(self, cid: str) -> None:
        """Remove a container (ended, or never started) and wait for it."""
        task = asyncio.get_running_loop().create_task(
            run_podman(self._podman("rm", "--force", "--time", "0", "--ignore", cid)))
        self._removals.add(task)
        try:
            await asyncio.shield(task)
        finally:
            self._removals.discard(task)

    def exec_spec(self, pod: Obj, container_name: str, command: list[str], *, tty: bool = False,
                  stdin: bool = False) -> ExecSpec:
        return self.index.exec_spec(pod, container_name, command, tty=tty, stdin=stdin)

    async def owned(self) -> list[str]:
        """The IDs of every container labelled with this agent's id, running or not."""
        res = await run_podman(self._podman("ps", "--all", "--quiet", "--no-trunc", "--filter",
                                            f"label={LABEL_AGENT}={self.owner}"))
        return res.stdout.split() if res.returncode == 0 else []

    async def clean_leftovers(self) -> int:
        """Remove the containers a previous run of this agent left (found by label)."""
        ids = await self.owned()
        if ids:
            await run_podman(self._podman("rm", "--force", "--time", "0", "--ignore", *ids))
        return len(ids)

    def checkpoint(self) -> None:
        """Nothing to write: the containers' labels are the record."""

    async def close(self) -> None:
        """Wait for the removals in flight (the runners have stopped their containers)."""
        if self._removals:
            await asyncio.gather(*list(self._removals), return_exceptions=True)
