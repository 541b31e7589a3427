"""The API client, informer and leader election against a real `podns apiserver` process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.config import load_kubeconfig
from podns.kube.informer import Informer
from podns.kube.resources import CONFIGMAPS, LEASES, PODS
from podns.kube.workqueue import WorkQueue, run_workers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ApiProcess:
    """One `podns apiserver` child process over SQLite in `data_dir`."""

    data_dir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    kubeconfig: Path | None = None
    url: str = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "podns", "apiserver", "--data-dir", str(self.data_dir),
            "--api-addr", f"127.0.0.1:{self.port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        match = re.search(r"serving (\S+) \(kubeconfig (\S+)\)", line)
        assert match, f"unexpected apiserver output: {line!r}"
        self.url, self.kubeconfig = match.group(1), Path(match.group(2))
        self.port = int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[ApiProcess]:
    server = ApiProcess(tmp_path / "state")
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(api: ApiProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(api.kubeconfig) as c:
        yield c


def cm(name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": "t"}},
            "data": data}


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polling informer state
            await asyncio.sleep(0.02)


async def test_crud_patch_and_errors(client: Client) -> None:
    """Create/get/update/patch(merge, json, strategic)/delete round-trip on the real server,
    with its Status errors mapped to the right classes."""
    created = await client.create(CONFIGMAPS, cm("one", a="1"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(errors.AlreadyExists) as exists:
        await client.create(CONFIGMAPS, cm("one"))
    assert exists.value.code == 409 and exists.value.details.get("name") == "one"
    created["data"]["b"] = "2"
    updated = await client.update(CONFIGMAPS, created)
    assert updated["data"] == {"a": "1", "b": "2"}
    with pytest.raises(errors.Conflict):
        await client.update(CONFIGMAPS, created)
    await client.patch(CONFIGMAPS, "one", {"data": {"c": "3"}}, "default")
    await client.patch(CONFIGMAPS, "one", [{"op": "remove", "path": "/data/a"}], "default",
                       patch_type="json")
    await client.patch(CONFIGMAPS, "one", {"data": {"d": "4"}}, "default", patch_type="strategic")
    assert (await client.get(CONFIGMAPS, "one", "default"))["data"] == {"b": "2", "c": "3",
                                                                        "d": "4"}
    with pytest.raises(errors.Invalid) as invalid:
        await client.create(CONFIGMAPS, cm("Bad_Name"))
    assert invalid.value.code == 422 and invalid.value.details.get("causes")
    dry = await client.create(CONFIGMAPS, cm("dry"), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        await client.get(CONFIGMAPS, "dry", "default")
    await client.delete(CONFIGMAPS, "one", "default")
    with pytest.raises(errors.NotFound) as nf:
        await client.delete(CONFIGMAPS, "one", "default")
    assert nf.value.reason == "NotFound"


async def test_list_all_follows_continue(client: Client) -> None:
    """list with a limit pages (if the server paginates); list_all returns every item."""
    for i in range(7):
        await client.create(CONFIGMAPS, cm(f"p{i}"))
    page = await client.list(CONFIGMAPS, "default", label_selector="app=t", limit=3)
    assert len(page["items"]) <= 3 or not page["metadata"].get("continue")
    everything = await client.list_all(CONFIGMAPS, "default", label_selector="app=t", limit=3)
    assert sorted(o["metadata"]["name"] for o in everything["items"]) == [f"p{i}" for i in
                                                                         range(7)]
    assert everything["metadata"]["resourceVersion"]


async def test_watch_and_informer(client: Client) -> None:
    """An informer syncs, follows adds/updates/deletes, and indexes; a raw watch from the
    informer's version sees the same changes."""
    await client.create(CONFIGMAPS, cm("w0"))
    inf = Informer(client, CONFIGMAPS, "default", label_selector="app=t")
    inf.add_index("first-key", lambda o: sorted(o.get("data") or {})[:1])
    events: list[tuple[str, str]] = []
    inf.add_handler(on_add=lambda o: events.append(("add", o["metadata"]["name"])),
                    on_update=lambda a, b: events.append(("update", b["metadata"]["name"])),
                    on_delete=lambda o: events.append(("delete", o["metadata"]["name"])))
    inf.start()
    await inf.wait_synced(10)
    rv = inf.resource_version
    await client.create(CONFIGMAPS, cm("w1", k="v"))
    await client.patch(CONFIGMAPS, "w0", {"data": {"k": "x"}}, "default")
    await client.delete(CONFIGMAPS, "w1", "default")
    await until(lambda: len(events) == 4)
    assert events == [("add", "w0"), ("add", "w1"), ("update", "w0"), ("delete", "w1")]
    assert inf.keys() == ["default/w0"] and inf.index_keys("first-key", "k") == ["default/w0"]
    seen = []
    async for ev in client.watch(CONFIGMAPS, "default", resource_version=rv):
        if ev.type != "BOOKMARK":
            seen.append((ev.type, ev.object["metadata"]["name"]))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w0"), ("DELETED", "w1")]
    await inf.stop()


async def test_failover_skips_dead_server(api: ApiProcess) -> None:
    """With a dead server listed first, the client reaches the live one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"{api.url.split('://')[0]}://127.0.0.1:{s.getsockname()[1]}"
    assert api.kubeconfig is not None
    config = load_kubeconfig(api.kubeconfig, servers=[dead, api.url])
    async with Client(config) as client:
        await client.create(CONFIGMAPS, cm("fo"))
        assert client.server == api.url


async def test_informer_survives_api_restart(api: ApiProcess) -> None:
    """When the API server goes away the informer keeps its cache and reports disconnected;
    after a restart it reconnects and sees new objects, and the same client writes again."""
    assert api.kubeconfig is not None
    async with Client.from_kubeconfig(api.kubeconfig) as client:
        await client.create(CONFIGMAPS, cm("before"))
        inf = Informer(client, CONFIGMAPS, "default")
        inf.start()
        await inf.wait_synced(10)
        await api.stop()
        await until(lambda: not inf.connected)
        assert inf.keys() == ["default/before"]
        await api.start()  # same data dir and port
        await until(lambda: inf.connected, 15)
        await client.create(CONFIGMAPS, cm("after"))  # pooled connections were dropped
        await until(lambda: inf.get("default/after") is not None, 15)
        await inf.stop()


async def test_workqueue_driven_by_informer(client: Client) -> None:
    """The controller pattern end to end: informer handlers enqueue keys, workers sync them
    by writing back through the API (copying the cached object first)."""
    inf = Informer(client, CONFIGMAPS, "default", label_selector="app=t")
    queue = WorkQueue(name="stamp")
    inf.add_handler(on_add=lambda o: queue.add(f"default/{o['metadata']['name']}"),
                    on_update=lambda a, b: queue.add(f"default/{b['metadata']['name']}"))

    async def sync(key: object) -> None:
        obj = inf.get(str(key))
        if obj is None or (obj.get("data") or {}).get("stamped") == "yes":
            return
        await client.patch(CONFIGMAPS, obj["metadata"]["name"], {"data": {"stamped": "yes"}},
                           "default")

    inf.start()
    workers = asyncio.create_task(run_workers(queue, sync, 2))
    await inf.wait_synced(10)
    for i in range(3):
        await client.create(CONFIGMAPS, cm(f"s{i}"))
    await until(lambda: all((inf.get(f"default/s{i}") or {}).get("data", {}).get("stamped")
                            == "yes" for i in range(3)))
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    await inf.stop()


async def test_leader_election_on_real_leases(client: Client) -> None:
    """Two electors on a real Lease: exactly one leads; when it stops renewing (cancelled
    without release) the other takes over within the lease duration."""
    from podns.kube.leaderelection import LeaderElector

    try:
        await client.list(LEASES, "default")
    except errors.NotFound:
        pytest.skip("this API server does not serve coordination.k8s.io/v1 leases yet")
    timing = {"lease_duration": 2.0, "renew_deadline": 1.2, "retry_period": 0.25}
    a = LeaderElector(client, "default", "ctrl", "a", release_on_cancel=False, **timing)
    b = LeaderElector(client, "default", "ctrl", "b", **timing)
    ta = asyncio.create_task(a.run())
    await until(lambda: a.is_leader)
    tb = asyncio.create_task(b.run())
    await asyncio.sleep(1.0)
    assert a.is_leader and not b.is_leader and b.leader == "a"
    ta.cancel()
    await asyncio.gather(ta, return_exceptions=True)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await until(lambda: b.is_leader, 10)
    assert loop.time() - t0 < timing["lease_duration"] + 3 * timing["retry_period"] + 0.5
    lease = await client.get(LEASES, "ctrl", "default")
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)


async def test_pods_list_across_namespaces(client: Client) -> None:
    """A list with namespace None spans every namespace."""
    result = await client.list(PODS)
    assert result["kind"] == "PodList" and isinstance(result["items"], list)
