"""The podman runtime's translation of a container spec into `podman run` (pure, no podman), and
the runtime choice for `--container-runtime`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from podns.node.heartbeat import Heartbeat
from podns.node.runtime.base import ContainerConfig, ContainerWaiting
from podns.node.runtime.podman import (
    ImageInfo,
    PodmanRuntime,
    _runs_as_root,
    container_name,
    run_args,
    run_env,
)
from podns.node.runtime.process import ProcessRuntime
from podns.node.runtime.select import Runtimes, UnavailableRuntime, UnknownHandler
from podns.node.sandbox import Mount

IMAGE = ImageInfo(ref="docker.io/library/busybox:1.36", image_id="sha256:abc", size=1, user="",
                  stop_signal="")
POD = {"metadata": {"name": "web-0", "namespace": "default", "uid": "u-1"}, "spec": {}}


def config(spec: dict[str, Any], *, pod: dict[str, Any] | None = None, **kw: Any) -> ContainerConfig:
    base: dict[str, Any] = dict(
        pod=pod or POD, spec={"name": "web", "image": "busybox:1.36", **spec}, name="web", init=False,
        attempt=2, command=None, args=None, env={"A": "1"}, cwd="/x", working_dir=None,
        log_path="/logs/web/2.log", netns_path="/run/netns/p1", pod_ip="10.244.0.5", hostname="web-0",
        resolv_conf="/etc/netns/p1/resolv.conf")
    base.update(kw)
    return ContainerConfig(**base)


def args_of(cfg: ContainerConfig, limits: bool = True) -> list[str]:
    return run_args(cfg, IMAGE, owner="own", node="n1", ulimits=["--ulimit", "nofile=1:1"], limits=limits)


def tail(args: list[str]) -> list[str]:
    """What follows the image reference (the container's args)."""
    return args[args.index(IMAGE.ref) + 1:]


def flag_values(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, a in enumerate(args) if a == flag]


@pytest.mark.parametrize(("command", "cargs", "entrypoint", "after"), [
    (None, None, None, []),
    (["/bin/sh", "-c"], None, ["/bin/sh", "-c"], []),
    (None, ["echo", "hi"], None, ["echo", "hi"]),
    (["/bin/sh", "-c"], ["echo $(A)"], ["/bin/sh", "-c"], ["echo $(A)"]),
], ids=["image-defaults", "command-only", "args-only", "both"])
def test_command_replaces_entrypoint_and_args_replace_cmd(
        command: list[str] | None, cargs: list[str] | None, entrypoint: list[str] | None,
        after: list[str]) -> None:
    """given command and/or args, then command becomes --entrypoint (which also drops the image's
    CMD, as Kubernetes wants) and args follow the image; neither keeps the image's own."""
    a = args_of(config({}, command=command, args=cargs))
    assert [json.loads(v) for v in flag_values(a, "--entrypoint")] == ([entrypoint] if entrypoint else [])
    assert tail(a) == after


def test_placement_labels_logs_and_environment() -> None:
    """given a pod in its network namespace, then the container joins it with the pod's host
    name, resolv.conf, volumes, the spec's env only, a k8s-file log at the CRI path, the agent's
    labels and ulimits, the dockershim name and no pull."""
    cfg = config({}, mounts=(Mount("/v/data", "/data"), Mount("/v/cfg", "/config", True)),
                 working_dir="/srv", hosts="/etc/netns/p1/hosts")
    a = args_of(cfg)
    assert a[:2] == ["run", "-d"] and flag_values(a, "--pull") == ["never"]
    assert flag_values(a, "--name") == [container_name(cfg)] == ["k8s_web_web-0_default_u-1_2"]
    assert flag_values(a, "--network") == ["ns:/run/netns/p1"]
    assert flag_values(a, "--hostname") == ["web-0"]
    assert sorted(flag_values(a, "--volume")) == ["/etc/netns/p1/hosts:/etc/hosts:ro",
                                                  "/etc/netns/p1/resolv.conf:/etc/resolv.conf:ro"]
    assert flag_values(a, "--mount") == ["type=bind,source=/v/data,destination=/data",
                                         "type=bind,source=/v/cfg,destination=/config,readonly=true"]
    assert flag_values(a, "--env") == ["A"]  # the value through podman's environment, not argv
    assert flag_values(a, "--workdir") == ["/srv"]
    assert "path=/logs/web/2.log" in flag_values(a, "--log-opt")
    assert flag_values(a, "--log-driver") == ["k8s-file"]
    labels = flag_values(a, "--label")
    assert {"io.podns.agent=own", "io.podns.node=n1", "io.podns.pod=default/web-0",
            "io.podns.pod-uid=u-1", "io.podns.container=web"} <= set(labels)
    assert flag_values(a, "--ulimit") == ["nofile=1:1"]


def test_values_stay_off_the_command_line() -> None:
    """given variables (a Secret's value among them), then their values reach podman through its
    environment (`--env KEY`), not its argv, except variables podman itself reads (PATH...)."""
    cfg = config({}, env={"DB_PASSWORD": "s3cret", "PATH": "/opt/bin:/bin", "XDG_CONFIG_HOME": "/x",
                          "my.var": "v"})
    a = args_of(cfg)
    assert "s3cret" not in " ".join(a)
    assert flag_values(a, "--env") == ["DB_PASSWORD", "PATH=/opt/bin:/bin", "XDG_CONFIG_HOME=/x", "my.var=v"]
    env = run_env(cfg)
    assert env["DB_PASSWORD"] == "s3cret" and env.get("PATH") != "/opt/bin:/bin"


def test_host_network_pod() -> None:
    """given a hostNetwork pod (no namespace of its own), then the container uses the host's."""
    a = args_of(config({}, netns_path="", resolv_conf=""))
    assert flag_values(a, "--network") == ["host"] and not flag_values(a, "--hostname")


def test_security_context_and_limits() -> None:
    """given securityContext and resources.limits, then podman gets the user, groups, read-only
    root, capabilities and cgroup limits; without cgroup support no limit flag is passed."""
    pod = {**POD, "spec": {"securityContext": {"runAsGroup": 7, "fsGroup": 9, "supplementalGroups": [11]}}}
    spec = {"securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": True, "privileged": False,
                                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                                "allowPrivilegeEscalation": False},
            "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}}
    a = args_of(config(spec, pod=pod))
    assert flag_values(a, "--user") == ["1000:7"]
    assert flag_values(a, "--group-add") == ["11", "9"]
    assert "--read-only" in a and "--read-only-tmpfs=false" in a and "--privileged" not in a
    assert flag_values(a, "--cap-add") == ["NET_ADMIN"] and flag_values(a, "--cap-drop") == ["ALL"]
    assert flag_values(a, "--security-opt") == ["no-new-privileges"]
    assert flag_values(a, "--memory") == [str(64 * 1024 * 1024)] and flag_values(a, "--cpus") == ["0.250"]
    assert not flag_values(args_of(config(spec, pod=pod), limits=False), "--memory")


@pytest.mark.parametrize(("sc", "user", "refused"), [
    ({"runAsNonRoot": True}, "", "image will run as root"),
    ({"runAsNonRoot": True}, "root", "image will run as root"),
    ({"runAsNonRoot": True}, "postgres", "non-numeric user (postgres)"),
    ({"runAsNonRoot": True}, "999", ""),
    ({"runAsNonRoot": True, "runAsUser": 0}, "999", "image will run as root"),
    ({"runAsNonRoot": True, "runAsUser": 1000}, "", ""),
    ({}, "", ""),
])
def test_run_as_non_root(sc: dict[str, Any], user: str, refused: str) -> None:
    """given runAsNonRoot, then a container that would run as uid 0 (by its spec or its image's
    USER) is refused with the kubelet's message; a non-numeric image user cannot be verified."""
    image = ImageInfo(ref=IMAGE.ref, image_id="", size=0, user=user, stop_signal="")
    why = _runs_as_root(config({"securityContext": sc}), image)
    assert (why or "") == "" if not refused else refused in (why or "")


async def test_select_process_and_unavailable_podman(tmp_path: Path) -> None:
    """given --container-runtime process, or podman on the loopback pod network, or auto on the
    loopback network, then the choice and its reason say so; an unusable podman makes every
    container wait with the reason (CreateContainerError) instead of failing the agent."""
    rts = Runtimes(pod_network="netns", data_dir=tmp_path, node="n1")
    await rts.start("process")
    assert isinstance(rts.default, ProcessRuntime) and "process" in rts.reason
    rts = Runtimes(pod_network="loopback", data_dir=tmp_path, node="n1")
    await rts.start("auto")
    assert isinstance(rts.default, ProcessRuntime) and "loopback" in rts.reason
    rts = Runtimes(pod_network="loopback", data_dir=tmp_path, node="n1")
    await rts.start("podman")
    assert isinstance(rts.default, UnavailableRuntime) and "--pod-network netns" in rts.reason
    with pytest.raises(ContainerWaiting, match="container runtime podman is unavailable") as err:
        await rts.default.ensure_image(config({}))
    assert err.value.reason == "CreateContainerError"


async def test_runtimes_by_handler(tmp_path: Path) -> None:
    """given a node on the loopback pod network (default: process), then RuntimeClass handler
    "" and "process" give the process runtime, "podman" the unavailable podman (with why), and
    any other handler is unknown, worded as containerd words it."""
    rts = Runtimes(pod_network="loopback", data_dir=tmp_path, node="n1")
    await rts.start("auto")
    assert await rts.for_handler("") is rts.process
    assert await rts.for_handler("process") is rts.process
    podman = await rts.for_handler("podman")
    assert isinstance(podman, UnavailableRuntime) and "--pod-network netns" in podman.why
    assert rts.known() == [rts.process, podman]
    with pytest.raises(UnknownHandler) as unknown:
        await rts.for_handler("runc")
    assert str(unknown.value) == 'failed to get sandbox runtime: no runtime for "runc" is configured'


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("podman") is None,
                    reason="needs root and podman (a trial container)")
async def test_podman_detected_when_a_pod_asks(tmp_path: Path) -> None:
    """given the process default on the netns pod network, then podman is not detected at start
    but when the handler `podman` is first asked for, once; a later start of an agent with the
    same data dir detects it at once (to remove what that podman left)."""
    rts = Runtimes(pod_network="netns", data_dir=tmp_path, node="n1")
    await rts.start("process")
    assert rts.known() == [rts.process]
    podman = await rts.for_handler("podman")
    assert isinstance(podman, PodmanRuntime) and await rts.for_handler("podman") is podman
    assert rts.default is rts.process and await rts.for_handler("") is rts.process
    await rts.close()
    again = Runtimes(pod_network="netns", data_dir=tmp_path, node="n1")
    await again.start("process")
    assert len(again.known()) == 2 and isinstance(again.known()[1], PodmanRuntime)
    await again.close()


async def test_podman_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """given no podman on PATH, then auto falls back to the process runtime naming why, and an
    explicit podman is unavailable with 'podman is not installed'."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    rts = Runtimes(pod_network="netns", data_dir=tmp_path, node="n1")
    await rts.start("auto")
    assert isinstance(rts.default, ProcessRuntime) and "podman is not installed" in rts.reason
    podman = await rts.for_handler("podman")
    assert isinstance(podman, UnavailableRuntime) and "podman is not installed" in podman.why
    rts = Runtimes(pod_network="netns", data_dir=tmp_path, node="n1")
    await rts.start("podman")
    assert isinstance(rts.default, UnavailableRuntime) and "podman is not installed" in rts.reason


def test_node_says_the_runtime_is_down() -> None:
    """given a container runtime that cannot run containers, then the Node is Ready=False with the
    kubelet's "container runtime is down" message and the reason; its nodeInfo names the runtime."""
    hb = Heartbeat(None, name="n1", host_ip="127.0.0.1", port=1, pod_cidr="10.244.0.0/24",  # type: ignore[arg-type]
                   runtime_version="podman://4.3.1", runtime_down="podman is not installed")
    st = hb.node_status()
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
    assert ready["message"] == "container runtime is down: podman is not installed"
    assert st["nodeInfo"]["containerRuntimeVersion"] == "podman://4.3.1"
