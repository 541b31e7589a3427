"""One container of a pod over its lifetime: instances, restarts with back-off, probes, stopping.

A `ContainerRunner` owns the `ContainerRecord` the pod status is built from, and moves it through
the states the kubelet reports: Waiting (ContainerCreating, CreateContainerConfigError,
CreateContainerError, CrashLoopBackOff) -> Running -> Terminated (Completed, Error, StartError),
restarting per the pod's restartPolicy with the kubelet's back-off (the first restart at once,
then 10 s doubling to 300 s; reset after an instance ran 10 minutes).

Probes (startup gating liveness and readiness) run only while an instance runs; a liveness or
startup failure stops the instance with its grace period and restarts it per policy. Every change
of the record calls `host.changed()` so that the pod status is written at once.

The runner never raises out of `run()` for anything the pod's spec or processes do; that is
reported through the record and `host.event(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from podns.node import probes
from podns.node.env import ConfigError, expand
from podns.node.logs import prune_instances
from podns.node.podstatus import ContainerRecord
from podns.node.probes import ProbeResult, ProbeSpec, ProbeWorker
from podns.node.runtime import (
    ContainerConfig,
    ContainerRuntime,
    ContainerWaiting,
    ExecSpec,
    ImagePullError,
    Instance,
    LogSource,
    StartError,
)
from podns.objects.times import now_rfc3339

Obj = dict[str, Any]

#: kubelet back-off: first restart immediate, then 10 s doubling up to 5 minutes
BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
#: an instance that ran this long resets the back-off (the kubelet forgets after 2 * max)
BACKOFF_RESET_AFTER = 600.0
#: how often a container whose configuration is incomplete (missing ConfigMap...) is retried
CONFIG_RETRY = 5.0
#: upper bound for a postStart hook (the kubelet has none; a hung hook must not wedge the pod)
POSTSTART_TIMEOUT = 120.0
#: extra time the kubelet grants after a preStop hook used up the grace period
PRESTOP_EXTRA = 2.0



class RunnerHost(Protocol):
    """What a runner needs from its pod worker."""

    pod: Obj
    pod_ip: str
    log_dir: Path
    work_dir: Path
    runtime: ContainerRuntime

    def container_env(self, container: Obj) -> dict[str, str]: ...
    async def refresh_sources(self) -> None: ...
    def event(self, etype: str, reason: str, message: str, field_path: str = "") -> None: ...
    def changed(self) -> None: ...
    def processes_changed(self) -> None: ...
    def grace_period(self) -> float: ...
    def container_config(self, container: Obj, *, name: str, init: bool, attempt: int,
                         command: list[str] | None, args: list[str] | None, env: dict[str, str],
                         cwd: str, log_path: Path, user: int | None, group: int | None,
                         groups: tuple[int, ...],
                         event: Callable[[str, str, str], None]) -> ContainerConfig: ...


class ContainerRunner:
    """Runs one container spec of a pod (an init container when `init`)."""

    def __init__(self, host: RunnerHost, spec: Obj, *, init: bool = False, restart_count: int = 0) -> None:
        self.host = host
        self.spec = spec
        self.name = str(spec.get("name", ""))
        self.init = init
        self.field_path = f"spec.{'initContainers' if init else 'containers'}{{{self.name}}}"
        self.record = ContainerRecord(name=self.name, image=str(spec.get("image", "")),
                                      restart_count=restart_count)
        self.proc: Instance | None = None
        self.sink: LogSource | None = None
        self.instances = 0
        self.stopping = False
        self.backoff = 0.0
        self._wake = asyncio.Event()
        self._kill = asyncio.Event()
        self._kill_grace: float | None = None
        self._probes: list[ProbeWorker] = []
        self._last_waiting: tuple[str, str] | None = None
        self.image_backoff = 0.0

    # -- logs --------------------------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        return self.host.log_dir / self.name

    def log_path(self, restart_count: int | None = None) -> Path:
        rc = self.record.restart_count if restart_count is None else restart_count
        return self.log_dir / f"{rc}.log"

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, policy: str) -> int | None:
        """Run instances until one ends for good under `policy` (Always/OnFailure/Never) or the
        runner is stopped; return the last exit code (None if it never ran)."""
        last: int | None = None
        while not self.stopping:
            code = await self._attempt()
            if self.stopping:
                return code if code is not None else last
            if code is None:
                await self._sleep(self._retry_after())
                continue
            last = code
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                return code
            term = self.record.state.get("terminated", {})
            ran = (self.proc.finished_at or time.time()) - self.proc.started_at if self.proc else 0.0
            if ran >= BACKOFF_RESET_AFTER:
                self.backoff = 0.0
            if self.backoff > 0:
                pod = self.host.pod.get("metadata", {})
                who = f"{pod.get('name')}_{pod.get('namespace')}({pod.get('uid')})"
                self.record.last_state = {"terminated": term}
                message = f"back-off {self.backoff:g}s restarting failed container={self.name} pod={who}"
                self.record.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
                self.host.event("Warning", "BackOff",
                                f"Back-off restarting failed container {self.name} in pod {who}",
                                self.field_path)
                self.host.changed()
                await self._sleep(self.backoff)
            self.backoff = min(max(self.backoff * 2, BACKOFF_INITIAL), BACKOFF_MAX)
        return last

    async def _sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or less if the runner is stopped meanwhile."""
        if self.stopping:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _waiting(self, reason: str, message: str, *, event: bool = True) -> None:
        """Waiting with `reason`; the Event (`Error: <message>`; for pull errors `Error:
        <reason>`, after the runtime's own Failed event with the message) once per change."""
        self.record.state = {"waiting": {"reason": reason, "message": message}}
        self.record.ready = False
        if self._last_waiting != (reason, message):
            self._last_waiting = (reason, message)
            self.host.event("Warning", "Failed", f"Error: {message if event else reason}", self.field_path)
        self.host.changed()

    def _run_as(self) -> tuple[int | None, int | None, tuple[int, ...]]:
        """(runAsUser, runAsGroup, supplementary groups: fsGroup and supplementalGroups), the
        container's securityContext over the pod's; nothing to switch unless the agent is root."""
        if os.geteuid() != 0:
            return None, None, ()  # only root may switch users; otherwise run as the agent's user
        pod_sc = (self.host.pod.get("spec") or {}).get("securityContext") or {}
        sc = self.spec.get("securityContext") or {}
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        group = sc.get("runAsGroup", pod_sc.get("runAsGroup"))
        extra = [pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else []
        extra += pod_sc.get("supplementalGroups") or []
        groups = tuple(dict.fromkeys(int(g) for g in extra))
        return (int(user) if user is not None else None, int(group) if group is not None else None,
                groups)

    def stop_signal(self) -> int:
        """The signal that asks this container to stop: `lifecycle.stopSignal` (Kubernetes 1.33;
        what an image's STOPSIGNAL is to a runtime; SIGINT is PostgreSQL's fast shutdown), else
        SIGTERM. An unknown name (the API server would refuse it) falls back to SIGTERM."""
        name = str((self.spec.get("lifecycle") or {}).get("stopSignal") or "SIGTERM")
        try:
            return int(signal.Signals[name if name.startswith("SIG") else f"SIG{name}"])
        except KeyError:
            return int(signal.SIGTERM)

    def _retry_after(self) -> float:
        """How long a container that could not be created waits: the image back-off after a
        failed pull (Waiting ImagePullBackOff meanwhile, as the kubelet), else CONFIG_RETRY."""
        waiting = self.record.state.get("waiting") or {}
        if waiting.get("reason") not in ("ErrImagePull", "ImagePullBackOff"):
            return CONFIG_RETRY
        self.image_backoff = min(max(self.image_backoff * 2, BACKOFF_INITIAL), BACKOFF_MAX)
        image = self.record.image
        message = f'Back-off pulling image "{image}"'
        self.record.state = {"waiting": {"reason": "ImagePullBackOff", "message": message}}
        self._last_waiting = ("ImagePullBackOff", message)
        self.host.event("Normal", "BackOff", message, self.field_path)
        self.host.changed()
        return self.image_backoff

    def _config(self, env: dict[str, str], attempt: int) -> ContainerConfig:
        """This instance as the runtime gets it (command/args expanded; None when unset)."""
        command = self.spec.get("command")
        args = self.spec.get("args")
        user, group, groups = self._run_as()
        return self.host.container_config(
            self.spec, name=self.name, init=self.init, attempt=attempt,
            command=[expand(str(c), env.get) for c in command] if command else None,
            args=[expand(str(a), env.get) for a in args] if args else None,
            env=env, cwd=self.spec.get("workingDir") or str(self.host.work_dir),
            log_path=self.log_path(attempt), user=user, group=group, groups=groups,
            event=lambda etype, reason, message: self.host.event(etype, reason, message, self.field_path),
        )

    async def _attempt(self) -> int | None:
        """Start one instance and wait for its end; None when it could not even be created."""
        prepared = await self._prepare()
        if prepared is None:
            return None
        env, config, rc = prepared
        self._count_attempt(rc)
        started = time.time()
        try:
            proc = await self.host.runtime.start(config)
        except ContainerWaiting as exc:
            self.instances -= 1  # never created: this attempt does not count as a restart
            if self.instances > 0:
                self.record.restart_count -= 1
            self._waiting(exc.reason, exc.message)
            return None
        except StartError as exc:
            return self._start_failed(exc)
        await self._running(proc, started, env)
        code = await self._wait_or_kill(proc)
        self._terminated(proc, code)
        return code

    async def _prepare(self) -> tuple[dict[str, str], ContainerConfig, int] | None:
        """The attempt's environment, runtime config (image present) and restart count; None
        (with the container Waiting, and why) when any of them cannot be had yet."""
        if self._last_waiting and self._last_waiting[0] == "CreateContainerConfigError":
            await self.host.refresh_sources()
        try:
            env = self.host.container_env(self.spec)
        except ConfigError as exc:
            self._waiting("CreateContainerConfigError", str(exc))
            return None
        rc = self.record.restart_count + (1 if self.instances > 0 else 0)
        try:
            config = self._config(env, rc)
            await self.host.runtime.ensure_image(config)
        except ImagePullError as exc:
            self._waiting(exc.reason, exc.message, event=False)
            return None
        except ContainerWaiting as exc:
            self._waiting(exc.reason, exc.message)
            return None
        except StartError as exc:  # set-up of the sandbox (mount points) failed
            self._waiting("CreateContainerError", exc.message)
            return None
        return env, config, rc

    def _count_attempt(self, rc: int) -> None:
        """Book an instance about to start: a restart after the first, the last termination kept
        as lastState, older instances' logs pruned (the current and previous `rc` stay)."""
        self.image_backoff = 0.0
        self._last_waiting = None
        if self.instances > 0:
            self.record.restart_count += 1
            term = self.record.state.get("terminated") or self.record.last_state.get("terminated")
            if term:
                self.record.last_state = {"terminated": term}
        self.instances += 1
        prune_instances(self.log_dir, {rc, rc - 1})

    def _start_failed(self, exc: StartError) -> int:
        """The runtime could not start the instance: terminated with 128, as the kubelet does."""
        self.proc = None
        self.sink = None
        self.record.state = {"terminated": {
            "exitCode": 128, "reason": exc.reason, "message": exc.message,
            "startedAt": now_rfc3339(0), "finishedAt": now_rfc3339(),
        }}
        self.record.ready = self.record.started = False
        self.host.event("Warning", "Failed", f"Error: failed to start container {self.name!r}: "
                        f"{exc.message}", self.field_path)
        self.host.changed()
        return 128

    async def _running(self, proc: Instance, started: float, env: dict[str, str]) -> None:
        """The instance started: record it, run its postStart hook (a failed hook kills it) and
        start its probes."""
        self.proc = proc
        self.sink = proc.log
        self._kill.clear()
        self._kill_grace = None
        self.record.container_id = proc.container_id
        if proc.image_id:
            self.record.image_id = proc.image_id
        if proc.image:
            self.record.image = proc.image
        self.record.state = {"running": {"startedAt": now_rfc3339(started)}}
        self.host.event("Normal", "Created", f"Created container: {self.name}", self.field_path)
        self.host.event("Normal", "Started", f"Started container {self.name}", self.field_path)
        hook = (self.spec.get("lifecycle") or {}).get("postStart")
        if hook and not await self._post_start(hook, env):
            self._kill_grace = self.host.grace_period()
            self._kill.set()
        self._start_probes(env)
        self.host.changed()
        self.host.processes_changed()

    def _terminated(self, proc: Instance, code: int) -> None:
        """The instance ended with `code`: probes stopped, the terminated state recorded (an init
        container that succeeded stays ready)."""
        self._stop_probes()
        self.record.ready = False
        self.record.started = False
        reason = proc.reason or ("Completed" if code == 0 else "Error")
        self.record.state = {"terminated": {
            "exitCode": code, "reason": reason,
            "startedAt": now_rfc3339(proc.started_at),
            "finishedAt": now_rfc3339(proc.finished_at or None),
            "containerID": self.record.container_id,
        }}
        if self.init and code == 0:
            self.record.ready = True
        self.host.changed()
        self.host.processes_changed()

    async def _wait_or_kill(self, proc: Instance) -> int:
        exit_wait = asyncio.ensure_future(proc.wait())
        kill_wait = asyncio.ensure_future(self._kill.wait())
        try:
            await asyncio.wait({exit_wait, kill_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kill_wait.cancel()
        if not exit_wait.done():
            grace = self._kill_grace if self._kill_grace is not None else self.host.grace_period()
            await proc.stop(grace, self.stop_signal())
        return await exit_wait

    # -- probes ------------------------------------------------------------------------------

    def _exec_in(self, command: list[str]) -> ExecSpec:
        """How `command` runs inside this container's running instance (the runtime's way in)."""
        if self.proc is None:
            raise ValueError(f"container {self.name} is not running")
        return self.proc.exec_spec(command)

    async def _check(self, handler: Obj, env: dict[str, str], timeout: float) -> ProbeResult:
        return await probes.check(handler, pod_ip=self.host.pod_ip, container=self.spec, env=env,
                                  timeout=timeout, exec_in=self._exec_in)

    def _attempt_fn(self, handler: Obj, env: dict[str, str]) -> Callable[[float], Any]:
        async def attempt(timeout: float) -> ProbeResult:
            return await self._check(handler, env, timeout)
        return attempt

    def _start_probes(self, env: dict[str, str]) -> None:
        if self.init:
            return
        startup = self.spec.get("startupProbe")
        self.record.ready = False
        if startup:
            spec = ProbeSpec.parse(startup)

            def on_startup(ok: bool, res: ProbeResult) -> None:
                if ok:
                    self.record.started = True
                    self._start_main_probes(env)
                    self.host.changed()
                else:
                    self._fail("Startup", res, spec)

            w = ProbeWorker("startupProbe", spec, self._attempt_fn(startup, env), on_startup,
                            initial=False)
            self._probes.append(w)
            w.start()
        else:
            self.record.started = True
            self._start_main_probes(env)

    def _start_main_probes(self, env: dict[str, str]) -> None:
        readiness = self.spec.get("readinessProbe")
        liveness = self.spec.get("livenessProbe")
        if readiness:
            rspec = ProbeSpec.parse(readiness)

            def on_ready(ok: bool, res: ProbeResult) -> None:
                self.record.ready = ok
                self.host.changed()

            def on_result(res: ProbeResult) -> None:
                if not res.success:
                    self.host.event("Warning", "Unhealthy", f"Readiness probe failed: {res.message}",
                                    self.field_path)

            w = ProbeWorker("readinessProbe", rspec, self._attempt_fn(readiness, env), on_ready,
                            initial=False, on_result=on_result)
            self._probes.append(w)
            w.start()
        else:
            self.record.ready = True
        if liveness:
            lspec = ProbeSpec.parse(liveness)

            def on_live(ok: bool, res: ProbeResult) -> None:
                if not ok:
                    self._fail("Liveness", res, lspec)

            w = ProbeWorker("livenessProbe", lspec, self._attempt_fn(liveness, env), on_live,
                            initial=True)
            self._probes.append(w)
            w.start()

    def _fail(self, kind: str, res: ProbeResult, spec: ProbeSpec) -> None:
        """A liveness/startup failure: kill this instance (the run loop restarts it per policy)."""
        self.host.event("Warning", "Unhealthy", f"{kind} probe failed: {res.message}", self.field_path)
        self.host.event("Normal", "Killing",
                        f"Container {self.name} failed {kind.lower()} probe, will be restarted",
                        self.field_path)
        self._kill_grace = spec.termination_grace
        self._kill.set()

    def _stop_probes(self) -> None:
        for w in self._probes:
            w.stop()
        self._probes.clear()

    # -- stopping ----------------------------------------------------------------------------

    async def terminate(self, grace: float) -> None:
        """Stop for good: preStop hook, SIGTERM, up to `grace` seconds, SIGKILL."""
        self.stopping = True
        self._wake.set()
        self._stop_probes()
        proc = self.proc
        if proc is None or not proc.running:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        hook = ((self.spec.get("lifecycle") or {}).get("preStop")) or None
        if hook and grace > 0:
            await self._pre_stop(hook, grace)
            remaining = deadline - loop.time()
            if remaining <= 0:
                remaining = PRESTOP_EXTRA
        else:
            remaining = grace
        self.host.event("Normal", "Killing", f"Stopping container {self.name}", self.field_path)
        await proc.stop(remaining, self.stop_signal())

    def finalize(self) -> None:
        """Record the end of an instance whose run loop was cancelled (agent shutdown)."""
        proc = self.proc
        self._stop_probes()
        self.record.ready = False
        self.record.started = False
        if proc is not None and "running" in self.record.state and proc.exit_code is not None:
            self.record.state = {"terminated": {
                "exitCode": proc.exit_code, "reason": "Completed" if proc.exit_code == 0 else "Error",
                "startedAt": now_rfc3339(proc.started_at),
                "finishedAt": now_rfc3339(proc.finished_at or None),
                "containerID": self.record.container_id,
            }}

    async def _post_start(self, hook: Obj, env: dict[str, str]) -> bool:
        """Run the postStart hook (the container counts as started only after it); False when it
        failed, which kills the container as the kubelet does (event FailedPostStartHook)."""
        if "sleep" in hook:
            await asyncio.sleep(float(hook["sleep"].get("seconds", 0)))
            return True
        res = await self._check(hook, env, POSTSTART_TIMEOUT)
        if res.success:
            return True
        self.host.event("Warning", "FailedPostStartHook", f"PostStartHook failed: {res.message}",
                        self.field_path)
        return False

    async def _pre_stop(self, hook: Obj, grace: float) -> None:
        if "sleep" in hook:
            await asyncio.sleep(min(float(hook["sleep"].get("seconds", 0)), grace))
            return
        try:
            env = self.host.container_env(self.spec)
        except ConfigError:
            env = {}
        res = await self._check(hook, env, grace)
        if not res.success:
            self.host.event("Warning", "FailedPreStopHook",
                            f"PreStopHook failed: {res.message}", self.field_path)
