"""Shared set-up of the controller benchmarks: a `podns apiserver` process (memory store) on a
free loopback port, and an in-process controller stack (shared informers + controllers)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from _common import free_port, stop

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from podns.controllers.endpoints.controller import EndpointsController  # noqa: E402
from podns.controllers.endpointslice.controller import EndpointSliceController  # noqa: E402
from podns.controllers.sharedinformers import SharedInformers  # noqa: E402
from podns.kube.client import Client  # noqa: E402
from podns.kube.resources import PODS  # noqa: E402


async def create_ready_pod(client: Client, name: str, labels: dict[str, str], ip: str, *,
                           node: str | None = None, exists_ok: bool = False) -> None:
    """Create pod `name` in `default` and mark it Running and Ready at `ip` (PATCH pods/status,
    as a node agent would): no node agent runs in these benchmarks. `exists_ok`: a pod left by
    an earlier attempt is only patched."""
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if node is not None:
        spec["nodeName"] = node
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}
    with contextlib.suppress(*((Exception,) if exists_ok else ())):
        await client.create(PODS, pod, "default")
    status = {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": "True"}]}
    await client.patch(PODS, name, {"status": status}, "default", subresource="status")


@contextlib.contextmanager
def apiserver() -> Iterator[Path]:
    """Run `podns apiserver --store memory://` pinned to CPU 1 (when there is one); yields the
    kubeconfig path."""
    with tempfile.TemporaryDirectory(prefix="podns-bench-") as tmp:
        port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "podns",
            "apiserver",
            "--data-dir",
            tmp,
            "--store",
            "memory://",
            "--api-addr",
            f"127.0.0.1:{port}",
        ]
        if (os.cpu_count() or 1) > 1 and os.path.exists("/usr/bin/taskset"):
            cmd = ["taskset", "-c", "1", *cmd]
        log = open(os.path.join(tmp, "api.log"), "wb")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        kubeconfig = Path(tmp) / "kubeconfig"
        deadline = time.monotonic() + 30
        import ssl

        while time.monotonic() < deadline:
            if kubeconfig.exists():
                try:
                    ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca.crt"))
                    with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=ctx, timeout=1):
                        break
                except OSError:
                    pass
            time.sleep(0.1)
        else:
            proc.kill()
            raise RuntimeError("apiserver did not start")
        try:
            yield kubeconfig
        finally:
            stop(proc)
            log.close()


@contextlib.contextmanager
def controller_manager(kubeconfig: Path) -> Iterator[None]:
    """Run `podns controller-manager` (EndpointSlice + Endpoints controllers, no leader election)
    against `kubeconfig`, pinned to CPU 0 (when there is more than one), until the block ends."""
    cmd = [
        sys.executable,
        "-m",
        "podns",
        "controller-manager",
        "--kubeconfig",
        str(kubeconfig),
        "--no-leader-elect",
        "--controllers",
        "endpointslice,endpoints",
    ]
    if (os.cpu_count() or 1) > 1:
        cmd = ["taskset", "-c", "0", *cmd]
    cm = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        cm.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            cm.wait(10)


@contextlib.asynccontextmanager
async def controllers(client: Client, *, legacy: bool = True) -> AsyncIterator[dict[str, Any]]:
    """The EndpointSlice (and Endpoints) controllers on shared informers, running."""
    informers = SharedInformers(client)
    out: dict[str, Any] = {"endpointslice": EndpointSliceController(client, informers)}
    if legacy:
        out["endpoints"] = EndpointsController(client, informers)
    informers.start()
    await informers.wait_synced(30)
    tasks = [asyncio.create_task(c.run()) for c in out.values()]
    try:
        yield out
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await informers.stop()
