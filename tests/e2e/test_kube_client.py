"""The API client, informer and leader election against a real `podns apiserver` process."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.config import load_kubeconfig
from podns.kube.informer import Informer
from podns.kube.resources import CONFIGMAPS, LEASES, NAMESPACES, PODS
from podns.kube.workqueue import WorkQueue, run_workers
from tests._support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

REPO = Path(__file__).resolve().parents[2]


def _spawn(data_dir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "podns", "apiserver", "--data-dir", str(data_dir),
            "--api-addr", f"127.0.0.1:{port}"]


def _parse(line: str) -> tuple[str, Path]:
    match = re.search(r"serving (\S+) \(kubeconfig (\S+)\)", line)
    assert match, f"unexpected apiserver output: {line!r}"
    return match.group(1), Path(match.group(2))


@dataclass
class ApiProcess:
    """One `podns apiserver` child process over SQLite in `data_dir` (async control, for the
    test that stops and restarts it)."""

    data_dir: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    kubeconfig: Path | None = None
    url: str = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *_spawn(self.data_dir, self.port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdout is not None
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 30)).decode()
        self.url, self.kubeconfig = _parse(line)
        self.port = int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@dataclass(frozen=True)
class SharedApi:
    url: str
    kubeconfig: Path


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedApi]:
    """One API server for the module's tests; each test works in a namespace of its own."""
    data_dir = tmp_path_factory.mktemp("kube-e2e") / "state"
    proc = subprocess.Popen(_spawn(data_dir, 0), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        url, kubeconfig = _parse(proc.stdout.readline())
        yield SharedApi(url, kubeconfig)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture
async def client(shared_api: SharedApi) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(shared_api.kubeconfig) as c:
        yield c


@pytest.fixture
async def ns(client: Client, request: pytest.FixtureRequest) -> str:
    """A fresh namespace named after the test."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": name}})
    return name


def cm(ns: str, name: str, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"app": "t"}},
            "data": data}


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polling informer state
            await asyncio.sleep(0.02)


async def test_crud_patch_and_errors(client: Client, ns: str) -> None:
    """Create/get/update/patch(merge, json, strategic)/delete round-trip on the real server,
    with its Status errors mapped to the right classes."""
    created = await client.create(CONFIGMAPS, cm(ns, "one", a="1"))
    assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
    with pytest.raises(errors.AlreadyExists) as exists:
        await client.create(CONFIGMAPS, cm(ns, "one"))
    assert exists.value.code == 409 and exists.value.details.get("name") == "one"
    created["data"]["b"] = "2"
    updated = await client.update(CONFIGMAPS, created)
    assert updated["data"] == {"a": "1", "b": "2"}
    with pytest.raises(errors.Conflict):
        await client.update(CONFIGMAPS, created)
    await client.patch(CONFIGMAPS, "one", {"data": {"c": "3"}}, ns)
    await client.patch(CONFIGMAPS, "one", [{"op": "remove", "path": "/data/a"}], ns,
                       patch_type="json")
    await client.patch(CONFIGMAPS, "one", {"data": {"d": "4"}}, ns, patch_type="strategic")
    assert (await client.get(CONFIGMAPS, "one", ns))["data"] == {"b": "2", "c": "3",
                                                                        "d": "4"}
    with pytest.raises(errors.Invalid) as invalid:
        await client.create(CONFIGMAPS, cm(ns, "Bad_Name"))
    assert invalid.value.code == 422 and invalid.value.details.get("causes")
    dry = await client.create(CONFIGMAPS, cm(ns, "dry"), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(errors.NotFound):
        await client.get(CONFIGMAPS, "dry", ns)
    await client.delete(CONFIGMAPS, "one", ns)
    with pytest.raises(errors.NotFound) as nf:
        await client.delete(CONFIGMAPS, "one", ns)
    assert nf.value.reason == "NotFound"


async def test_list_all_follows_continue(client: Client, ns: str) -> None:
    """list with a limit pages (if the server paginates); list_all returns every item."""
    for i in range(7):
        await client.create(CONFIGMAPS, cm(ns, f"p{i}"))
    page = await client.list(CONFIGMAPS, ns, label_selector="app=t", limit=3)
    assert len(page["items"]) <= 3 or not page["metadata"].get("continue")
    everything = await client.list_all(CONFIGMAPS, ns, label_selector="app=t", limit=3)
    assert sorted(o["metadata"]["name"] for o in everything["items"]) == [f"p{i}" for i in
                                                                         range(7)]
    assert everything["metadata"]["resourceVersion"]


async def test_watch_and_informer(client: Client, ns: str) -> None:
    """An informer syncs, follows adds/updates/deletes, and indexes; a raw watch from the
    informer's version sees the same changes."""
    await client.create(CONFIGMAPS, cm(ns, "w0"))
    inf = Informer(client, CONFIGMAPS, ns, label_selector="app=t")
    inf.add_index("first-key", lambda o: sorted(o.get("data") or {})[:1])
    events: list[tuple[str, str]] = []
    inf.add_handler(on_add=lambda o: events.append(("add", o["metadata"]["name"])),
                    on_update=lambda a, b: events.append(("update", b["metadata"]["name"])),
                    on_delete=lambda o: events.append(("delete", o["metadata"]["name"])))
    inf.start()
    await inf.wait_synced(10)
    rv = inf.resource_version
    await client.create(CONFIGMAPS, cm(ns, "w1", k="v"))
    await client.patch(CONFIGMAPS, "w0", {"data": {"k": "x"}}, ns)
    await client.delete(CONFIGMAPS, "w1", ns)
    await until(lambda: len(events) == 4)
    assert events == [("add", "w0"), ("add", "w1"), ("update", "w0"), ("delete", "w1")]
    assert inf.keys() == [f"{ns}/w0"] and inf.index_keys("first-key", "k") == [f"{ns}/w0"]
    seen = []
    async for ev in client.watch(CONFIGMAPS, ns, resource_version=rv):
        if ev.type != "BOOKMARK":
            seen.append((ev.type, ev.object["metadata"]["name"]))
        if len(seen) == 3:
            break
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w0"), ("DELETED", "w1")]
    await inf.stop()


async def test_failover_skips_dead_server(shared_api: SharedApi, ns: str) -> None:
    """With a dead server listed first, the client reaches the live one."""
    dead = f"{shared_api.url.split('://')[0]}://127.0.0.1:{free_port()}"
    config = load_kubeconfig(shared_api.kubeconfig, servers=[dead, shared_api.url])
    async with Client(config) as client:
        await client.create(CONFIGMAPS, cm(ns, "fo"))
        assert client.server == shared_api.url


async def test_informer_survives_api_restart(tmp_path: Path) -> None:
    """When the API server goes away the informer keeps its cache and reports disconnected;
    after a restart it reconnects and sees new objects, and the same client writes again."""
    api = ApiProcess(tmp_path / "state")
    await api.start()
    assert api.kubeconfig is not None
    try:
        async with Client.from_kubeconfig(api.kubeconfig) as client:
            await client.create(CONFIGMAPS, cm("default", "before"))
            inf = Informer(client, CONFIGMAPS, "default")
            inf.start()
            await inf.wait_synced(10)
            await api.stop()
            await until(lambda: not inf.connected)
            assert inf.keys() == ["default/before"]
            await api.start()  # same data dir and port
            await until(lambda: inf.connected, 15)
            await client.create(CONFIGMAPS, cm("default", "after"))  # pooled connections died
            await until(lambda: inf.get("default/after") is not None, 15)
            await inf.stop()
    finally:
        await api.stop()


async def test_workqueue_driven_by_informer(client: Client, ns: str) -> None:
    """The controller pattern end to end: informer handlers enqueue keys, workers sync them
    by writing back through the API (copying the cached object first)."""
    inf = Informer(client, CONFIGMAPS, ns, label_selector="app=t")
    queue = WorkQueue(name="stamp")
    inf.add_handler(on_add=lambda o: queue.add(f"{ns}/{o['metadata']['name']}"),
                    on_update=lambda a, b: queue.add(f"{ns}/{b['metadata']['name']}"))

    async def sync(key: object) -> None:
        obj = inf.get(str(key))
        if obj is None or (obj.get("data") or {}).get("stamped") == "yes":
            return
        await client.patch(CONFIGMAPS, obj["metadata"]["name"], {"data": {"stamped": "yes"}},
                           ns)

    inf.start()
    workers = asyncio.create_task(run_workers(queue, sync, 2))
    await inf.wait_synced(10)
    for i in range(3):
        await client.create(CONFIGMAPS, cm(ns, f"s{i}"))
    await until(lambda: all((inf.get(f"{ns}/s{i}") or {}).get("data", {}).get("stamped")
                            == "yes" for i in range(3)))
    queue.shutdown()
    await asyncio.wait_for(workers, 5)
    await inf.stop()


async def test_leader_election_on_real_leases(client: Client, ns: str) -> None:
    """Two electors on a real Lease: exactly one leads; when it stops renewing (cancelled
    without release) the other takes over within the lease duration."""
    from podns.kube.leaderelection import LeaderElector

    try:
        await client.list(LEASES, ns)
    except errors.NotFound:
        pytest.skip("this API server does not serve coordination.k8s.io/v1 leases yet")
    timing = {"lease_duration": 2.0, "renew_deadline": 1.2, "retry_period": 0.25}
    a = LeaderElector(client, ns, "ctrl", "a", release_on_cancel=False, **timing)
    b = LeaderElector(client, ns, "ctrl", "b", **timing)
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
    lease = await client.get(LEASES, "ctrl", ns)
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
    tb.cancel()
    await asyncio.gather(tb, return_exceptions=True)


async def test_pods_list_across_namespaces(client: Client, ns: str) -> None:
    """A list with namespace None spans every namespace."""
    result = await client.list(PODS)
    assert result["kind"] == "PodList" and isinstance(result["items"], list)
