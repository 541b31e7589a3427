"""One pod on this node, from admission to removal: the kubelet's "pod worker".

`PodWorker.run()` gives the pod its IP and volumes, runs the init containers in order (each to
success, restarting per policy), then all containers side by side (`ContainerRunner`). The agent
hands it each newer version of the pod (`update`); a `deletionTimestamp` starts the graceful
termination: preStop hooks, SIGTERM, the grace period, SIGKILL, a final status, then the pod
object is deleted with gracePeriodSeconds=0 (as the kubelet does) and the pod's address,
emptyDirs and logs are released.

Everything that can go wrong with the pod's spec or its processes ends as status (reasons and
messages) and events; `run()` itself only ends by completion or termination.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from podns.node import env as envmod
from podns.node import volumes
from podns.node.apirelay import ApiRelay, RelayError
from podns.node.container import ContainerRunner
from podns.node.ipam import IPAM, IPRangeExhausted
from podns.node.netns import NetnsError
from podns.node.podnetwork import PodNetwork
from podns.node.podstatus import ContainerRecord, pod_status
from podns.node.runtime import ContainerConfig, ContainerRuntime, StartError
from podns.node.sandbox import Sandbox, user_db
from podns.objects import join_key, name_of, namespace_of, now_rfc3339

log = logging.getLogger(__name__)
Obj = dict[str, Any]

#: Kubernetes' default terminationGracePeriodSeconds
DEFAULT_GRACE = 30.0
#: how often sandbox set-up (runtime, IP, volumes) is retried after a failure
SETUP_RETRY = 2.0
#: a projected ServiceAccount token is replaced once this share of its lifetime has passed, or
#: after a day at the latest (the kubelet's token manager: 80 %, 24 h)
TOKEN_REFRESH_FRACTION = 0.8
TOKEN_REFRESH_MAX = 24 * 3600.0
#: pause before a failed token refresh is tried again
TOKEN_RETRY = 10.0


def token_refresh_at(issued: float, expires: float) -> float:
    """When a token issued at `issued` and expiring at `expires` (epoch seconds) is replaced."""
    return issued + min(TOKEN_REFRESH_FRACTION * max(0.0, expires - issued), TOKEN_REFRESH_MAX)


class SandboxError(Exception):
    """The pod's sandbox cannot be created (its RuntimeClass is gone or names a handler this
    node lacks): FailedCreatePodSandBox with the message, retried."""


def _restarts(previous: dict[Any, Obj], container: Obj) -> int:
    """The restart count the API last saw for `container` (kept across agent restarts)."""
    return int((previous.get(container.get("name")) or {}).get("restartCount", 0) or 0)


class TokenError(Exception):
    """A ServiceAccount token could not be obtained (the pod's volume waits: FailedMount)."""


class AgentHost(Protocol):
    """What a pod worker needs from the node agent."""

    node_name: str
    host_ip: str
    data_dir: Path
    ipam: IPAM
    ipam6: IPAM | None  # dual-stack namespace mode: the IPv6 pod CIDR's allocator
    ipv6_primary: bool  # dual-stack: the IPv6 address is `status.podIP`
    network: PodNetwork | None  # namespace mode; None: loopback addresses
    api_relay: ApiRelay | None  # namespace mode: the API server at 127.0.0.1 in each pod
    runtime: ContainerRuntime  # the default (pods without a RuntimeClass)

    async def fetch_sources(self, pod: Obj) -> tuple[dict[str, Obj | None], dict[str, Obj | None]]: ...
    async def runtime_for(self, pod: Obj) -> ContainerRuntime: ...
    async def request_token(self, pod: Obj, audience: str, seconds: int) -> tuple[str, float]: ...
    def service_env(self) -> dict[str, str]: ...
    def record_event(self, pod: Obj, etype: str, reason: str, message: str, field_path: str = "") -> None: ...
    def status_dirty(self, worker: PodWorker) -> None: ...
    async def delete_pod(self, pod: Obj) -> None: ...
    def processes_changed(self) -> None: ...
    def worker_done(self, worker: PodWorker) -> None: ...


class PodWorker:
    """Runs one pod (see the module docstring)."""

    def __init__(self, agent: AgentHost, pod: Obj) -> None:
        self.agent = agent
        self.pod = pod
        meta = pod.get("metadata", {})
        self.uid = str(meta.get("uid", ""))
        self.key = join_key(namespace_of(pod) or "default", name_of(pod))
        spec = pod.get("spec") or {}
        self.dir = volumes.pod_dir(agent.data_dir, pod)
        self.log_dir = self.dir / "logs"
        self.work_dir = self.dir / "cwd"
        previous = {s.get("name"): s for s in ((pod.get("status") or {}).get("containerStatuses") or [])}
        self.init_runners = [ContainerRunner(self, c, init=True) for c in spec.get("initContainers") or []]
        self.runners = [
            ContainerRunner(self, c, restart_count=_restarts(previous, c))
            for c in spec.get("containers") or []
        ]
        self.runtime = agent.runtime  # until `_setup` resolves the pod's RuntimeClass
        self.pod_ip = ""
        self.pod_ip6 = ""  # dual-stack netns mode: the pod's IPv6 address
        self.netns_path = ""  # namespace mode: the pod's network namespace, once created
        self.start_time = (pod.get("status") or {}).get("startTime") or now_rfc3339()
        self.init_failed = False
        self.reason = ""
        self.message = ""
        self.terminating = False  # stopping for good (deletion) or for agent shutdown
        self.deleting = False  # the pod is being deleted (or is gone from the API)
        self.volumes: dict[str, Path] = {}
        self.sources: tuple[dict[str, Obj | None], dict[str, Obj | None]] = ({}, {})
        self._lifecycle: asyncio.Task[None] | None = None
        #: keeps the projected ServiceAccount tokens fresh (see `_rotate_tokens`)
        self._tokens_task: asyncio.Task[None] | None = None
        #: (volume, path, audience, expirationSeconds) -> epoch seconds its token is replaced at
        self._token_refresh: dict[tuple[str, str, str, int], float] = {}
        self._termination: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    # -- RunnerHost ------------------------------------------------------------------------------

    def container_env(self, container: Obj) -> dict[str, str]:
        """The container's variables; an image runtime's containers get only their spec's (the
        image brings PATH and the rest), the process runtime's also the host's PATH and podns's
        pod IP and volume paths."""
        configmaps, secrets = self.sources
        try:
            mounted = volumes.container_env(container, self.volumes)
        except volumes.VolumeError as exc:  # a subPath leaving its volume: the kubelet's reason too
            raise envmod.ConfigError(f"failed to prepare subPath: {exc}") from exc
        ips = ",".join(self.pod_ips())  # the downward API's status.podIPs; status.podIP is the first
        services = self.agent.service_env()
        if self.runtime.images:
            return envmod.build_env(self.pod, container, pod_ip=ips, host_ip=self.agent.host_ip,
                                    extra=services, configmaps=configmaps, secrets=secrets,
                                    host_defaults=False)
        extra = {**services, "PODNS_POD_IP": ips.split(",")[0], **mounted}
        return envmod.build_env(self.pod, container, pod_ip=ips, host_ip=self.agent.host_ip,
                                extra=extra, configmaps=configmaps, secrets=secrets)

    async def refresh_sources(self) -> None:
        """Fetch the ConfigMaps/Secrets again (a container waits for one that was missing)."""
        self.sources = await self.agent.fetch_sources(self.pod)

    def container_config(self, container: Obj, *, name: str, init: bool, attempt: int,
                         command: list[str] | None, args: list[str] | None, env: dict[str, str],
                         cwd: str, log_path: Path, user: int | None, group: int | None,
                         groups: tuple[int, ...], event: Callable[[str, str, str], None]) -> ContainerConfig:
        """One instance of `container` for the runtime, placed in this pod: its network
        namespace, host name, resolv.conf, /etc/hosts, /dev/shm and volumes (see
        `ContainerConfig`), and a passwd entry for a uid the host does not know. Raises
        StartError when a mount point cannot be made."""
        spec = self.pod.get("spec") or {}
        hostname = str(spec.get("hostname") or self.pod.get("metadata", {}).get("name", ""))[:63]
        network = self.agent.network
        try:
            mounts = tuple(volumes.container_mounts(container, self.volumes))
        except volumes.VolumeError as exc:  # a subPath leaving its volume (a symlink made since)
            raise StartError(f"failed to prepare subPath: {exc}") from exc
        resolv = network.resolv_path(self.uid) if network is not None and self.netns_path else ""
        sandbox = None
        if network is not None and self.netns_path and self.runtime.host_mount_points:
            # the process runtime's sandboxes share the host's file system: mount points there
            shm = volumes.shm_size(self.pod, container)
            bound = tuple(m for m in mounts if not (shm.from_volume and m.target == "/dev/shm"))
            try:
                network.ensure_mount_points(self.uid, bound)
                passwd, group_file = user_db(self.dir / "etc" / name, user, group)
            except OSError as exc:
                raise StartError(f"creating mount point: {exc}") from exc
            sandbox = Sandbox(netns_path=self.netns_path, hostname=hostname, resolv_conf=resolv,
                              hosts=network.hosts_path(self.uid), mounts=bound, cwd=cwd, user=user,
                              group=group, groups=groups, shm_size=shm.size, passwd=passwd,
                              group_file=group_file)
        return ContainerConfig(
            pod=self.pod, spec=container, name=name, init=init, attempt=attempt, command=command,
            args=args, env=env, cwd=cwd, working_dir=container.get("workingDir") or None,
            log_path=str(log_path), user=user, group=group, groups=groups, sandbox=sandbox,
            netns_path=self.netns_path, pod_ip=self.pod_ip, hostname=hostname, resolv_conf=resolv,
            hosts=network.hosts_path(self.uid) if resolv and network is not None else "",
            mounts=mounts, event=event)

    def event(self, etype: str, reason: str, message: str, field_path: str = "") -> None:
        self.agent.record_event(self.pod, etype, reason, message, field_path)

    def changed(self) -> None:
        self.agent.status_dirty(self)

    def processes_changed(self) -> None:
        self.agent.processes_changed()

    def grace_period(self) -> float:
        meta = self.pod.get("metadata", {})
        value = meta.get("deletionGracePeriodSeconds")
        if value is None:
            value = (self.pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        return float(value if value is not None else DEFAULT_GRACE)

    # -- status ----------------------------------------------------------------------------------

    def status(self) -> Obj:
        """The pod status to write now."""
        init: list[ContainerRecord] = [r.record for r in self.init_runners]
        main: list[ContainerRecord] = [r.record for r in self.runners]
        st = pod_status(self.pod, init, main, pod_ips=self.pod_ips(), host_ip=self.agent.host_ip,
                        start_time=self.start_time, init_failed=self.init_failed,
                        reason=self.reason, message=self.message)
        if self.terminal_after_deletion():
            codes = [(r.record.terminated or {}).get("exitCode") for r in self.runners]
            st["phase"] = "Succeeded" if codes and all(c == 0 for c in codes) else "Failed"
        return st

    def terminal_after_deletion(self) -> bool:
        """All containers stopped because the pod is being deleted (the kubelet then reports a
        terminal phase, so controllers stop counting the pod)."""
        return self.deleting and all(r.proc is None or not r.proc.running for r in self.runners)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._lifecycle = asyncio.get_running_loop().create_task(self._run(), name=f"pod:{self.key}")
        if (self.pod.get("metadata") or {}).get("deletionTimestamp"):
            self.request_termination()

    def update(self, pod: Obj) -> None:
        """A newer version of the pod from the API (spec is immutable; metadata and status move)."""
        self.pod = pod
        if pod.get("metadata", {}).get("deletionTimestamp") and not self.terminating:
            self.request_termination()

    def request_termination(self, *, grace: float | None = None, api_gone: bool = False) -> None:
        """Stop the pod gracefully; then delete its object (unless already gone) and release it."""
        if self._termination is not None:
            return
        self.terminating = True
        self.deleting = True
        g = self.grace_period() if grace is None else grace
        self._termination = asyncio.get_running_loop().create_task(
            self._terminate(g, api_gone=api_gone), name=f"terminate:{self.key}")

    async def _run(self) -> None:
        try:
            await self._setup()
            if await self._run_init():
                policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
                await asyncio.gather(*(r.run(policy) for r in self.runners))
            if not self.terminating:
                self._release_ips()  # a finished pod holds no address
                await self._release_network()
                self.changed()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not take the agent down: report it on the pod
            log.exception("pod %s: worker failed", self.key)
            self.reason, self.message = "NodeAgentError", "the node agent failed to run this pod; see its log"
            self.changed()

    async def _setup(self) -> None:
        """Runtime, address, ConfigMaps/Secrets and volumes; retried until they succeed (pod
        stays Pending)."""
        while True:
            try:
                # the kubelet resolves the runtime handler before the CRI sets up the network
                self.runtime = await self.agent.runtime_for(self.pod)
                if (self.pod.get("spec") or {}).get("hostNetwork"):
                    self.pod_ip = self.agent.host_ip  # the node's own address, as in Kubernetes
                else:
                    previous = [p.get("ip") for p in (self.pod.get("status") or {}).get("podIPs") or []
                                if isinstance(p, dict)]
                    version = self.agent.ipam.network.version
                    self.pod_ip = self.agent.ipam.allocate(self.uid, preferred=_first(previous, version))
                    if self.agent.ipam6 is not None:
                        self.pod_ip6 = self.agent.ipam6.allocate(self.uid, preferred=_first(previous, 6))
                    if self.agent.network is not None:
                        self.netns_path = await self.agent.network.add_pod(self.pod, self.pod_ip,
                                                                           self.pod_ip6 or None)
                        if self.agent.api_relay is not None:
                            await self.agent.api_relay.add(self.uid, self.netns_path)
                self.sources = await self.agent.fetch_sources(self.pod)
                configmaps, secrets = self.sources
                tokens = await self._request_tokens(volumes.token_sources(self.pod))
                self.volumes = await asyncio.to_thread(volumes.prepare, self.pod, self.agent.data_dir,
                                                       configmaps=configmaps, secrets=secrets,
                                                       tokens=tokens)
                if self._token_refresh and self._tokens_task is None:
                    self._tokens_task = asyncio.get_running_loop().create_task(
                        self._rotate_tokens(), name=f"tokens:{self.key}")
                self.work_dir.mkdir(parents=True, exist_ok=True)
                self.reason = self.message = ""
                self.changed()
                return
            except SandboxError as exc:
                self._setup_failed("FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}")
            except IPRangeExhausted as exc:
                self._setup_failed("FailedCreatePodSandBox",
                                   f"failed to assign an IP address to the pod: {exc}")
            except (NetnsError, RelayError) as exc:
                self._setup_failed("FailedCreatePodSandBox",
                                   f"failed to set up the pod's network namespace: {exc}")
            except volumes.VolumeError as exc:
                self._setup_failed("FailedMount", f"MountVolume.SetUp failed: {exc}")
            except TokenError as exc:
                self._setup_failed("FailedMount", f"MountVolume.SetUp failed: failed to fetch token: {exc}")
            except OSError as exc:
                self._setup_failed("FailedMount", f"MountVolume.SetUp failed: {exc}")
            await asyncio.sleep(SETUP_RETRY)

    def pod_ips(self) -> list[str]:
        """The pod's addresses, primary first (`status.podIPs`): the node's primary family first."""
        ips = [ip for ip in (self.pod_ip, self.pod_ip6) if ip]
        return ips[::-1] if self.agent.ipv6_primary and len(ips) == 2 else ips

    def _release_ips(self) -> None:
        self.agent.ipam.release(self.uid)
        if self.agent.ipam6 is not None:
            self.agent.ipam6.release(self.uid)
        self.pod_ip6 = ""

    async def _request_tokens(self, sources: list[tuple[str, str, str, int]]
                              ) -> dict[str, dict[str, str]]:
        """A fresh token for each `serviceAccountToken` source: volume -> path -> token; records
        when each is to be replaced. Raises TokenError."""
        out: dict[str, dict[str, str]] = {}
        for source in sources:
            vol, path, audience, seconds = source
            token, expires = await self._token(audience, seconds)
            out.setdefault(vol, {})[path] = token
            self._token_refresh[source] = token_refresh_at(time.time(), expires)
        return out

    async def _token(self, audience: str, seconds: int) -> tuple[str, float]:
        try:
            token, expires = await self.agent.request_token(self.pod, audience, seconds)
        except Exception as exc:  # KubeError, or a transport failure: the caller retries
            raise TokenError(str(exc) or type(exc).__name__) from exc
        if not token:
            raise TokenError("the API server returned no token")
        return token, expires

    async def _rotate_tokens(self) -> None:
        """Replace each projected token once 80 % of its lifetime has passed (the kubelet's rule);
        a failed request is retried every TOKEN_RETRY seconds while the old token still works."""
        while not self.terminating:
            due = min(self._token_refresh.values())
            await asyncio.sleep(max(0.0, due - time.time()))
            for source, at in list(self._token_refresh.items()):
                if at > time.time() or self.terminating:
                    continue
                vol, path, audience, seconds = source
                directory = self.volumes.get(vol)
                try:
                    token, expires = await self._token(audience, seconds)
                    if directory is not None:
                        await asyncio.to_thread(volumes.write_token, self.pod, vol, directory, path, token)
                    self._token_refresh[source] = token_refresh_at(time.time(), expires)
                except (TokenError, volumes.VolumeError, OSError) as exc:
                    log.warning("pod %s: refreshing its ServiceAccount token: %s", self.key, exc)
                    self._token_refresh[source] = time.time() + TOKEN_RETRY

    def _setup_failed(self, reason: str, message: str) -> None:
        if (self.reason, self.message) != (reason, message):
            self.event("Warning", reason, message)
        self.reason, self.message = reason, message
        self.changed()

    async def _run_init(self) -> bool:
        """Init containers one after another; False when the pod failed (restartPolicy Never)."""
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for runner in self.init_runners:
            code = await runner.run("Never" if policy == "Never" else "OnFailure")
            if self.terminating:
                return False
            if code != 0:
                self.init_failed = True
                self.changed()
                return False
        return True

    def _stop_tokens(self) -> None:
        if self._tokens_task is not None:
            self._tokens_task.cancel()
            self._tokens_task = None

    async def _terminate(self, grace: float, *, api_gone: bool) -> None:
        self._stop_tokens()
        try:
            runners = self.init_runners + self.runners
            await asyncio.gather(*(r.terminate(grace) for r in runners), return_exceptions=True)
            if self._lifecycle is not None:
                self._lifecycle.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._lifecycle
            self.finished.set()
            if not api_gone:
                self.changed()
                await self.agent.delete_pod(self.pod)
        finally:
            self.finished.set()
            self._release_ips()
            await self._release_network()
            await asyncio.to_thread(volumes.cleanup, self.pod, self.agent.data_dir)
            self.agent.worker_done(self)

    async def _release_network(self) -> None:
        """Namespace mode: take the pod's namespace away (its processes are gone)."""
        spec = self.pod.get("spec") or {}
        if self.agent.network is not None and not spec.get("hostNetwork"):
            self.netns_path = ""
            if self.agent.api_relay is not None:
                await self.agent.api_relay.remove(self.uid)
            try:
                await self.agent.network.remove_pod(self.uid)
            except NetnsError as exc:
                log.warning("pod %s: removing its network namespace: %s", self.key, exc)

    async def shutdown(self, grace: float) -> None:
        """Agent shutdown: stop the processes (SIGTERM, `grace`, SIGKILL) but keep the pod, its
        address and volumes: an agent restarted with the same data dir starts it again."""
        self.terminating = True
        self._stop_tokens()
        await asyncio.gather(*(r.terminate(grace) for r in self.init_runners + self.runners),
                             return_exceptions=True)
        for task in (self._lifecycle, self._termination):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for runner in self.init_runners + self.runners:
            runner.finalize()


def _first(ips: list[Any], version: int) -> str | None:
    """The first address of IP `version` among `ips` (a previous `status.podIPs`), if any."""
    for ip in ips:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(str(ip)).version == version:
                return str(ip)
    return None
