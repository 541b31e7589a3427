"""Pod lifecycle with real processes: phases, restarts, probes, termination (fake API side)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from podns.node.logs import LogOptions, read_lines
from tests.node.conftest import PY, FakeAgent, cond, make_pod
from tests.node.test_runtime import alive

pytestmark = pytest.mark.timeout(30)

SERVE = ("import socket,os,time; s=socket.socket(); "
         "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
         "s.bind((os.environ['POD_IP'], int(os.environ['PORT']))); s.listen(); time.sleep(60)")
async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `pred` (for conditions outside the agent, e.g. files written by pod processes)."""
    for _ in range(int(timeout / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


async def test_running_pod_gets_ip_and_ready(agent: FakeAgent) -> None:
    """given a pod whose container listens on its pod IP with a tcp readiness probe, it becomes
    Running and Ready, and the listener is on exactly that IP."""
    c = {"name": "web", "image": "x", "command": [PY, "-c", SERVE],
         "env": [POD_IP_ENV, {"name": "PORT", "value": "8080"}],
         "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}
    agent.start(make_pod("web-0", [c]))
    st = await agent.wait_for(lambda s: cond(s, "Ready") == "True")
    assert st["phase"] == "Running" and st["podIP"].startswith("127.77.0.")
    assert st["containerStatuses"][0]["ready"] is True and st["containerStatuses"][0]["started"] is True
    _, writer = await asyncio.open_connection(st["podIP"], 8080)
    writer.close()
    assert cond(st, "ContainersReady") == "True" and cond(st, "PodScheduled") == "True"


async def test_readiness_follows_probe(agent: FakeAgent, tmp_path: Path) -> None:
    """given an exec readiness probe on a file, Ready flips with the file, in about a period."""
    flag = tmp_path / "ready"
    c = {"name": "c", "command": ["sleep", "60"],
         "readinessProbe": {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
                            "failureThreshold": 1}}
    agent.start(make_pod("p", [c]))
    st = await agent.wait_for(lambda s: s["phase"] == "Running")
    assert cond(st, "Ready") == "False"
    flag.touch()
    await agent.wait_for(lambda s: cond(s, "Ready") == "True", timeout=3)
    flag.unlink()
    st = await agent.wait_for(lambda s: cond(s, "Ready") == "False", timeout=3)
    assert st["conditions"][1]["reason"] == "ContainersNotReady"
    assert any(e[1] == "Unhealthy" and "Readiness probe failed" in e[2] for e in agent.events)


async def test_init_containers_run_in_order_then_main(agent: FakeAgent, tmp_path: Path) -> None:
    out = tmp_path / "order"
    inits = [{"name": f"init{i}", "command": ["sh", "-c", f"echo init{i} >> {out}"]} for i in (1, 2)]
    main = {"name": "main", "command": ["sh", "-c", f"echo main >> {out}; sleep 60"]}
    agent.start(make_pod("p", [main], initContainers=inits))
    st = await agent.wait_for(lambda s: s["phase"] == "Running" and cond(s, "Ready") == "True")
    await until(lambda: len(out.read_text().split()) == 3)
    assert out.read_text().split() == ["init1", "init2", "main"]
    assert cond(st, "Initialized") == "True"
    assert [s["state"]["terminated"]["reason"] for s in st["initContainerStatuses"]] == ["Completed"] * 2


async def test_failing_init_with_never_fails_pod(agent: FakeAgent) -> None:
    inits = [{"name": "bad", "command": ["sh", "-c", "exit 2"]}]
    agent.start(make_pod("p", [{"name": "m", "command": ["true"]}], initContainers=inits,
                         restartPolicy="Never"))
    st = await agent.wait_for(lambda s: s["phase"] == "Failed")
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 2
    assert cond(st, "Initialized") == "False"


@pytest.mark.parametrize(
    ("policy", "code", "phase"),
    [("Never", 0, "Succeeded"), ("Never", 3, "Failed"), ("OnFailure", 0, "Succeeded")],
)
async def test_restart_policy_terminal_phases(agent: FakeAgent, policy: str, code: int, phase: str) -> None:
    agent.start(make_pod("p", [{"name": "c", "command": ["sh", "-c", f"exit {code}"]}], restartPolicy=policy))
    st = await agent.wait_for(lambda s: s["phase"] == phase)
    term = st["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == code and term["reason"] == ("Completed" if code == 0 else "Error")
    assert st["containerStatuses"][0]["restartCount"] == 0
    assert agent.ipam.get("uid-p") is None  # a finished pod releases its address


async def test_crashloop_backoff_and_restart_count(agent: FakeAgent) -> None:
    """given a container exiting 1 under Always, it restarts (first at once, then with back-off),
    shows CrashLoopBackOff with lastState terminated, and the pod stays Running."""
    agent.start(make_pod("p", [{"name": "c", "command": ["sh", "-c", "echo boom; exit 1"]}]))
    st = await agent.wait_for(lambda s: s["containerStatuses"][0]["restartCount"] >= 3
                              and "waiting" in s["containerStatuses"][0]["state"])
    cs = st["containerStatuses"][0]
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert st["phase"] == "Running"
    assert any(e[1] == "BackOff" for e in agent.events)


@pytest.mark.parametrize(
    ("container", "reason", "message"),
    [
        ({"name": "c", "image": "nginx"}, "CreateContainerError", "no command"),
        ({"name": "c", "command": ["definitely-not-a-command"]}, "StartError", "executable file not found"),
        ({"name": "c", "command": ["true"], "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "missing", "key": "k"}}}]},
         "CreateContainerConfigError", 'configmap "missing" not found'),
    ],
    ids=["no-command", "not-found", "missing-configmap"],
)
async def test_bad_containers_get_clear_reason(agent: FakeAgent, container: dict, reason: str,
                                               message: str) -> None:
    agent.start(make_pod("p", [container], restartPolicy="Never"))

    def has_reason(s: dict) -> bool:
        state = s["containerStatuses"][0]["state"]
        detail = state.get("waiting") or state.get("terminated") or {}
        return detail.get("reason") == reason

    st = await agent.wait_for(has_reason)
    state = st["containerStatuses"][0]["state"]
    assert message in (state.get("waiting") or state.get("terminated"))["message"]
    assert any(e[0] == "Warning" and message in e[2] for e in agent.events)


async def test_liveness_failure_restarts_container(agent: FakeAgent) -> None:
    c = {"name": "c", "command": ["sleep", "60"],
         "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1},
         "terminationGracePeriodSeconds": 1}
    agent.start(make_pod("p", [c], terminationGracePeriodSeconds=1))
    st = await agent.wait_for(lambda s: s["containerStatuses"][0]["restartCount"] >= 1, timeout=10)
    assert st["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 143
    assert any(e[1] == "Killing" and "liveness" in e[2] for e in agent.events)


async def test_startup_probe_gates_readiness(agent: FakeAgent, tmp_path: Path) -> None:
    flag = tmp_path / "started"
    c = {"name": "c", "command": ["sleep", "60"],
         "startupProbe": {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
                          "failureThreshold": 30}}
    agent.start(make_pod("p", [c]))
    st = await agent.wait_for(lambda s: s["phase"] == "Running")
    assert st["containerStatuses"][0]["started"] is False and cond(st, "Ready") == "False"
    flag.touch()
    st = await agent.wait_for(lambda s: cond(s, "Ready") == "True", timeout=4)
    assert st["containerStatuses"][0]["started"] is True


async def test_deletion_prestop_sigterm_grace_sigkill(agent: FakeAgent, tmp_path: Path) -> None:
    """given a container that ignores SIGTERM and a preStop hook, deletion runs the hook, waits
    the grace period, kills it, deletes the pod object and releases the IP and pod dir."""
    hook_out = tmp_path / "prestop"
    armed = tmp_path / "armed"
    ignore = (f"import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              f"open({str(armed)!r}, 'w').close(); time.sleep(60)")
    c = {"name": "c", "command": [PY, "-c", ignore],
         "readinessProbe": {"exec": {"command": ["test", "-f", str(armed)]}, "periodSeconds": 1},
         "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"echo ran > {hook_out}"]}}}}
    pod = make_pod("p", [c], terminationGracePeriodSeconds=1)
    w = agent.start(pod)
    await agent.wait_for(lambda s: cond(s, "Ready") == "True")
    pod_dir = w.dir
    assert agent.ipam.get("uid-p") is not None
    deleted = dict(pod, metadata={**pod["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z",
                                  "deletionGracePeriodSeconds": 1})
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    w.update(deleted)
    await asyncio.wait_for(w.finished.wait(), 10)
    await until(lambda: bool(agent.done))
    assert 0.9 < loop.time() - t0 < 5
    assert hook_out.read_text().strip() == "ran"
    assert agent.deleted == ["p"]
    st = agent.statuses[-1]
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert st["phase"] == "Failed"
    assert agent.ipam.get("uid-p") is None and not pod_dir.exists()


async def test_ip_exhaustion_is_reported_not_crash(tmp_path: Path) -> None:
    agent = FakeAgent(tmp_path, cidr="127.78.0.0/30")  # one usable address
    agent.start(make_pod("a", [{"name": "c", "command": ["sleep", "30"]}]))
    await agent.wait_for(lambda s: s["phase"] == "Running")
    agent.start(make_pod("b", [{"name": "c", "command": ["sleep", "30"]}]))
    st = await agent.wait_for(lambda s: s.get("reason") == "FailedCreatePodSandBox")
    assert "no free address" in st["message"] and st["phase"] == "Pending"
    assert any(e[1] == "FailedCreatePodSandBox" for e in agent.events)
    await agent.shutdown()


async def test_volumes_env_and_pvc_outlives_pod(agent: FakeAgent, tmp_path: Path) -> None:
    script = "echo hi > $(PODNS_VOLUME_DATA)/f; echo x > $PODNS_VOLUME_SCRATCH/g"
    c = {"name": "c", "command": ["sh", "-c", script],
         "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "scratch", "mountPath": "/s"}]}
    vols = [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-0"}},
            {"name": "scratch", "emptyDir": {}}]
    agent.start(make_pod("db-0", [c], volumes=vols, restartPolicy="Never"))
    await agent.wait_for(lambda s: s["phase"] == "Succeeded")
    assert (tmp_path / "volumes" / "pvc" / "default" / "data-db-0" / "f").read_text() == "hi\n"


async def test_shutdown_leaves_no_process(agent: FakeAgent, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pidfile}; wait"
    agent.start(make_pod("p", [{"name": "c", "command": ["sh", "-c", script]}]))
    await agent.wait_for(lambda s: s["phase"] == "Running")
    await until(lambda: pidfile.exists() and bool(pidfile.read_text().strip()))
    await agent.shutdown()
    await until(lambda: not alive(int(pidfile.read_text())))


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
async def test_run_as_user_when_root(agent: FakeAgent, tmp_path: Path) -> None:
    """given runAsUser/runAsGroup 65534 (pod level, container overrides group), the process runs so."""
    c = {"name": "c", "command": ["sh", "-c", "echo $(id -u) $(id -g)"],
         "securityContext": {"runAsGroup": 65533}}
    w = agent.start(make_pod("p", [c], restartPolicy="Never", securityContext={"runAsUser": 65534,
                                                                               "runAsGroup": 65534}))
    await agent.wait_for(lambda s: s["phase"] == "Succeeded")
    lines, _ = read_lines(w.runners[0].log_path(), LogOptions())
    assert lines == [b"65534 65533\n"]


async def test_host_network_pod_uses_node_ip(agent: FakeAgent) -> None:
    agent.start(make_pod("h", [{"name": "c", "command": ["sleep", "30"]}], hostNetwork=True))
    st = await agent.wait_for(lambda s: s["phase"] == "Running")
    assert st["podIP"] == agent.host_ip and agent.ipam.get("uid-h") is None


async def test_configmap_secret_and_hostpath_volumes(agent: FakeAgent, tmp_path: Path) -> None:
    """given configMap (with items), secret and hostPath volumes, the container reads their files
    through PODNS_VOLUME_<NAME>; a missing required ConfigMap is a FailedMount, not a crash."""
    host = tmp_path / "host"
    agent.sources = ({"cfg": {"data": {"a.conf": "alpha", "b": "beta"}}},
                     {"sec": {"data": {"pw": "aHVudGVyMg=="}}})
    script = ("cat $PODNS_VOLUME_CFG/conf/a.conf; echo; cat $PODNS_VOLUME_SEC/pw; echo; "
              "echo hp > $PODNS_VOLUME_HOST_DIR/f")
    c = {"name": "c", "command": ["sh", "-c", script],
         "volumeMounts": [{"name": n, "mountPath": f"/{n}"} for n in ("cfg", "sec", "host-dir")]}
    items = [{"key": "a.conf", "path": "conf/a.conf"}]
    vols = [{"name": "cfg", "configMap": {"name": "cfg", "items": items}},
            {"name": "sec", "secret": {"secretName": "sec"}},
            {"name": "host-dir", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}}]
    w = agent.start(make_pod("v", [c], volumes=vols, restartPolicy="Never"))
    await agent.wait_for(lambda s: s["phase"] == "Succeeded")
    lines, _ = read_lines(w.runners[0].log_path(), LogOptions())
    assert lines == [b"alpha\n", b"hunter2\n"]
    assert (host / "f").read_text() == "hp\n"
    agent.sources = ({}, {})
    agent.start(make_pod("m", [c], volumes=vols[:1], restartPolicy="Never"))
    st = await agent.wait_for(lambda s: s.get("reason") == "FailedMount")
    assert 'configmap "cfg" not found' in st["message"] and st["phase"] == "Pending"


async def test_post_start_hook_runs_and_failure_restarts(agent: FakeAgent, tmp_path: Path) -> None:
    """given a postStart exec hook, it runs after the start; a failing one kills the container."""
    marker = tmp_path / "post"
    ok = {"name": "ok", "command": ["sleep", "30"],
          "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", f"echo done > {marker}"]}}}}
    agent.start(make_pod("a", [ok]))
    await agent.wait_for(lambda s: cond(s, "Ready") == "True")
    assert marker.read_text() == "done\n"
    bad = {"name": "bad", "command": ["sleep", "30"],
           "lifecycle": {"postStart": {"exec": {"command": ["false"]}}}}
    agent.start(make_pod("b", [bad], terminationGracePeriodSeconds=1))
    await agent.wait_for(lambda s: s["containerStatuses"][0]["name"] == "bad"
                         and s["containerStatuses"][0]["restartCount"] >= 1)
    assert any(e[1] == "FailedPostStartHook" for e in agent.events)
