"""Streams into pods with real kubectl (1.27: SPDY; 1.33: WebSocket) and the official Python
client against `podns up`: exec (exit codes, stdin, TTY and resize), cp both ways, port-forward
(TCP round trips on two connections at once, an error when nothing listens, svc/, sts/), attach and
run -it --rm, the errors Kubernetes gives, authorization, and a client that disconnects."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.stream import portforward, stream

from tests._support import kubectl_binary, wait_until
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

VERSIONS = ["1.27", "1.33"]  # 1.27 speaks SPDY for exec and port-forward, 1.33 WebSocket

#: an echo server answering each line with "<pod name>: <line>", on many connections at once
ECHO = ("import os, socket, threading\n"
        "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        "s.bind((os.environ['POD_IP'], 7000)); s.listen()\n"
        "def serve(c):\n"
        "    f = c.makefile('rwb')\n"
        "    for line in f:\n"
        "        f.write(os.environ['HOSTNAME'].encode() + b': ' + line); f.flush()\n"
        "    c.close()\n"
        "while True:\n"
        "    threading.Thread(target=serve, args=(s.accept()[0],), daemon=True).start()\n")


def _field_env(name: str, path: str) -> dict[str, object]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _pod(name: str, command: list[str], *, labels: dict[str, str] | None = None,
         restart: str = "Always") -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": name, "labels": labels or {}},
                       "spec": {"restartPolicy": restart, "containers": [{
                           "name": "main", "image": "python", "command": command,
                           "env": [{"name": "FOO", "value": "bar"}, _field_env("POD_IP", "status.podIP"),
                                   _field_env("HOSTNAME", "metadata.name")],
                       }]}})


def _phase(podns: Podns, name: str) -> str:
    r = podns.kubectl("get", "pod", name, "-o", "jsonpath={.status.phase}")
    return r.stdout if r.returncode == 0 else ""


def _listening(ip: str) -> bool:
    try:
        socket.create_connection((ip, 7000), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(podns_module: Podns) -> Podns:
    """`podns up` with a sleeping pod, an echo server (behind a Service), and a completed pod."""
    p = podns_module
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
           "spec": {"selector": {"app": "echo"}, "ports": [{"port": 17000, "targetPort": 7000}]}}
    template = json.loads(_pod("x", [sys.executable, "-c", ECHO], labels={"app": "echo-sts"}))
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "echo-sts"},
           "spec": {"serviceName": "echo-sts", "replicas": 1,
                    "selector": {"matchLabels": {"app": "echo-sts"}},
                    "template": {"metadata": {"labels": {"app": "echo-sts"}}, "spec": template["spec"]}}}
    for manifest in (_pod("sleeper", ["sleep", "3600"]),
                     _pod("echo", [sys.executable, "-c", ECHO], labels={"app": "echo"}),
                     _pod("done", ["true"], restart="Never"), json.dumps(svc), json.dumps(sts)):
        r = p.kubectl("apply", "--validate=false", "-f", "-", input=manifest)
        assert r.returncode == 0, r.stderr
    for name, phase in (("sleeper", "Running"), ("echo", "Running"), ("done", "Succeeded"),
                        ("echo-sts-0", "Running")):
        wait_until(lambda n=name, ph=phase: _phase(p, n) == ph, what=f"pod {name} {phase}")
    for name in ("echo", "echo-sts-0"):
        ip = p.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout
        wait_until(lambda a=ip: _listening(a), what=f"{name} listening")
    return p


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_output_stdin_and_exit_code(cluster: Podns, version: str) -> None:
    """given a running pod, kubectl exec -i passes stdin through (EOF included), returns stdout
    and stderr apart, sees the container's env, and ends with the command's exit code."""
    r = cluster.kubectl("exec", "-i", "sleeper", "--", "sh", "-c", "cat; echo $FOO; echo oops >&2; exit 3",
                        version=version, input="hello\nworld\n")
    assert r.stdout == "hello\nworld\nbar\n"
    assert "oops" in r.stderr and "command terminated with exit code 3" in r.stderr
    assert r.returncode == 3
    ok = cluster.kubectl("exec", "sleeper", "--", "hostname", version=version)
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_errors_are_kubernetes_errors(cluster: Podns, version: str) -> None:
    """a command that does not exist is exit code 127 with the runtime's message; an unknown
    container, a completed pod and a read-only user get Kubernetes' errors."""
    r = cluster.kubectl("exec", "sleeper", "--", "no-such-command", version=version)
    assert r.returncode == 127 and 'exec: "no-such-command": executable file not found in $PATH' in r.stderr
    r = cluster.kubectl("exec", "sleeper", "-c", "nope", "--", "true", version=version)
    assert r.returncode == 1 and "container nope is not valid for pod sleeper" in r.stderr
    r = cluster.kubectl("exec", "done", "--", "true", version=version)
    assert r.returncode == 1
    assert "cannot exec into a container in a completed pod; current phase is Succeeded" in r.stderr
    r = cluster.kubectl("exec", "sleeper", "--", "true", version=version,
                        kubeconfig=cluster.readonly_kubeconfig)
    assert r.returncode == 1 and "forbidden" in r.stderr.lower(), r.stderr


Step = tuple[str, bytes, tuple[int, int] | None]


def _in_pty(argv: list[str], env: dict[str, str], cwd: Path, steps: list[Step],
            timeout: float = 30.0) -> tuple[str, int]:
    """Run `argv` with a pty as its controlling terminal (30 rows, 100 columns) and drive it: for
    each step (text, typed, size) resize to (rows, cols) if given, type the bytes, and wait for
    the text, typing again every second meanwhile (a resize reaches the pod asynchronously);
    returns (all output, exit code)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))

    def ctty() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            start_new_session=True, preexec_fn=ctty)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        for wait_for, typed, size in steps:
            if size is not None:
                fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
            seen = len(out)
            typed_at = 0.0
            while wait_for.encode() not in out[seen:] and time.monotonic() < deadline:
                if typed and time.monotonic() - typed_at > 1.0:
                    os.write(master, typed)
                    typed_at = time.monotonic()
                ready, _, _ = select.select([master], [], [], 0.1)
                if ready:
                    try:
                        out += os.read(master, 4096)
                    except OSError:
                        break
            if not wait_for and typed:
                os.write(master, typed)
        while proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    out += os.read(master, 4096)
                except OSError:
                    time.sleep(0.05)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return out.decode("utf-8", "replace").replace("\r", ""), code


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_tty_and_resize(cluster: Podns, version: str) -> None:
    """given kubectl exec -it from a terminal of 30x100, the command runs on a pty of that size
    (once kubectl's first resize message arrived: the node waits up to 3 s for it, which a loaded
    machine can exceed, so the command waits for a size too), that follows a resize to 40x120;
    ^D ends the shell's input; the exit code comes back."""
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    argv = [kubectl_binary(version), f"--cache-dir={cluster.cache_dir / version}", "exec", "-it", "sleeper",
            "--", "sh", "-c", 'while [ "$(stty size)" = "0 0" ]; do sleep 0.1; done; stty size; tty; '
            "while read line; do stty size; done; exit 5"]
    out, code = _in_pty(argv, env, cluster.workdir,
                        [("30 100", b"", None), ("40 120", b"\n", (40, 120)), ("", b"\x04", None)])
    assert out.startswith("30 100\n") and "/dev/pts/" in out and "40 120" in out, out
    assert code == 5, out


@pytest.mark.parametrize("version", VERSIONS)
def test_cp_both_ways(cluster: Podns, version: str, tmp_path: Path) -> None:
    """kubectl cp copies a file into the pod and back out (tar through exec)."""
    src = tmp_path / "payload.bin"
    src.write_bytes(os.urandom(300_000))
    inside = tmp_path / f"in-pod-{version}.bin"  # loopback mode: the pod sees the host's files
    r = cluster.kubectl("cp", str(src), f"sleeper:{inside}", version=version)
    assert r.returncode == 0, r.stderr
    assert inside.read_bytes() == src.read_bytes()
    back = tmp_path / "back.bin"
    r = cluster.kubectl("cp", f"sleeper:{inside}", str(back), version=version)
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == src.read_bytes()


Forward = Callable[[str, int, str], tuple[int, "subprocess.Popen[str]"]]


@pytest.fixture
def forward(cluster: Podns) -> Iterator[Forward]:
    """Start `kubectl port-forward <target> :<port>`; returns the local port it chose."""
    procs: list[subprocess.Popen[str]] = []

    def start(target: str, port: int, version: str) -> tuple[int, subprocess.Popen[str]]:
        cmd = [kubectl_binary(version), f"--cache-dir={cluster.cache_dir / version}", "port-forward",
               "--address", "127.0.0.1", target, f":{port}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig)))
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        return int(m.group(1)), proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _talk(conn: socket.socket, text: str) -> str:
    conn.sendall(text.encode() + b"\n")
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_round_trips_on_two_connections(cluster: Podns, version: str, forward: Forward) -> None:
    """given kubectl port-forward pod/echo, two TCP connections at once each get their own
    answers from the pod's port; svc/echo and sts/echo-sts (a pod found by selector) too."""
    local, _ = forward("pod/echo", 7000, version)
    with socket.create_connection(("127.0.0.1", local), timeout=10) as a, \
            socket.create_connection(("127.0.0.1", local), timeout=10) as b:
        assert _talk(a, "one") == "echo: one"
        assert _talk(b, "two") == "echo: two"
        assert _talk(a, "three") == "echo: three"
    svc_local, _ = forward("svc/echo", 17000, version)
    with socket.create_connection(("127.0.0.1", svc_local), timeout=10) as c:
        assert _talk(c, "via service") == "echo: via service"
    sts_local, _ = forward("sts/echo-sts", 7000, version)
    with socket.create_connection(("127.0.0.1", sts_local), timeout=10) as c:
        assert _talk(c, "via statefulset") == "echo-sts-0: via statefulset"


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_to_a_closed_port_reports_the_error(cluster: Podns, version: str,
                                                         forward: Forward) -> None:
    """given nothing listening on the pod's port 9999, the connection closes and kubectl
    reports the node's error (kubectl >= 1.27 then ends: 'lost connection to pod')."""
    local, proc = forward("pod/echo", 9999, version)
    with socket.create_connection(("127.0.0.1", local), timeout=10) as c:
        c.settimeout(10)
        assert c.recv(10) == b""
    proc.wait(timeout=20)
    err = proc.stderr.read()
    assert "error forwarding port 9999 to pod echo" in err and "connection refused" in err, err


def test_python_client_stream_and_portforward(cluster: Podns) -> None:
    """the official client's kubernetes.stream.stream (exec, WebSocket v4) and portforward."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        out = stream(core.connect_get_namespaced_pod_exec, "sleeper", "default",
                     command=["sh", "-c", "echo from-python $FOO"], stderr=True, stdin=False,
                     stdout=True, tty=False)
        assert out == "from-python bar\n"
        resp = stream(core.connect_get_namespaced_pod_exec, "sleeper", "default",
                      command=["sh", "-c", "exit 4"], stderr=True, stdin=False, stdout=True, tty=False,
                      _preload_content=False)
        resp.run_forever(timeout=20)
        assert resp.returncode == 4
        pf = portforward(core.connect_get_namespaced_pod_portforward, "echo", "default", ports="7000")
        sock = pf.socket(7000)
        sock.setblocking(True)
        sock.settimeout(10)
        assert _talk(sock, "py") == "echo: py"
        sock.close()
        pf.close()
    finally:
        api.close()


def test_client_disconnect_kills_the_command(cluster: Podns, tmp_path: Path) -> None:
    """given kubectl exec of a long command, when kubectl is killed, the command's processes
    are killed too (nothing leaks on the node)."""
    pidfile = tmp_path / "pid"
    cmd = [kubectl_binary("1.33"), f"--cache-dir={cluster.cache_dir / '1.33'}", "exec", "sleeper", "--",
           "sh", "-c", f"echo $$ > {pidfile}; exec sleep 1000"]
    proc = subprocess.Popen(cmd, env=dict(os.environ, KUBECONFIG=str(cluster.kubeconfig)))
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="command started")
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (ProcessLookupError, FileNotFoundError):
            return True  # reaped, possibly between the two looks
        return stat.split(")")[1].split()[0] == "Z"

    wait_until(gone, timeout=20, what="the exec'd process killed")


@pytest.mark.parametrize("version", VERSIONS)
def test_run_it_rm_attaches_to_a_tty_and_deletes_the_pod(cluster: Podns, version: str) -> None:
    """kubectl run -it --rm: the pod's shell runs on a pty (stdin: true, tty: true), gets what is
    typed, its exit code is kubectl's, and the pod is deleted afterwards."""
    name = f"run-{version.replace('.', '-')}"
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    argv = [kubectl_binary(version), f"--cache-dir={cluster.cache_dir / version}", "run", "-it", "--rm", name,
            "--image=busybox", "--restart=Never", "--", "sh"]
    out, code = _in_pty(argv, env, cluster.workdir, [("42", b"tty -s && echo $((6*7)); exit 3\n", None)],
                        timeout=60)
    assert "42" in out and code == 3, out
    assert f'pod "{name}" deleted' in out
    assert cluster.kubectl("get", "pod", name).returncode == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_attach_to_a_running_container(cluster: Podns, version: str) -> None:
    """kubectl attach -i joins a running container's own stdin and output (stdin: true,
    stdinOnce: true: the client's EOF closes the container's stdin, which then ends)."""
    name = f"att-{version.replace('.', '-')}"
    script = "while read l; do echo got $l; done; echo bye"
    pod = json.loads(_pod(name, ["sh", "-c", script], restart="Never"))
    pod["spec"]["containers"][0].update(stdin=True, stdinOnce=True)
    assert cluster.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod)).returncode == 0
    wait_until(lambda: _phase(cluster, name) == "Running", what=f"pod {name} Running")
    r = cluster.kubectl("attach", "-i", name, version=version, input="a\nb\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("got a\ngot b\nbye\n"), r.stdout
    wait_until(lambda: _phase(cluster, name) == "Succeeded", what=f"pod {name} Succeeded")
