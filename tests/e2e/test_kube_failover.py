"""Client failover between two real API servers over one etcd (distributed mode).

Two `podns apiserver` processes share an etcd and the same CA and tokens (B's data dir is
seeded with A's), so one client Config lists both. When A is SIGKILLed, writes through the same
Client go to B and a running Informer resumes its watch on B and keeps converging.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from podns.kube.client import Client
from podns.kube.config import load_kubeconfig
from podns.kube.informer import Informer
from podns.kube.resources import CONFIGMAPS
from tests.e2e.conftest import Podns
from tests.etcd_cluster import EtcdCluster

pytestmark = [pytest.mark.e2e, pytest.mark.etcd, pytest.mark.timeout(90)]


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}, "data": {"k": name}}


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 - polling informer state
            await asyncio.sleep(0.05)


async def test_client_and_informer_fail_over(etcd1: EtcdCluster, tmp_path: Path) -> None:
    """given API servers A and B over one etcd and a client listing both, when A is killed,
    then writes go to B and the informer keeps its cache and catches up through B."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Podns(tmp_path / "a", "--store", etcd1.url, command="apiserver")
    b = Podns(tmp_path / "b", "--store", etcd1.url, command="apiserver")
    try:
        await asyncio.to_thread(a.start)
        b.data_dir.mkdir(parents=True)
        for name in ("ca.crt", "ca.key", "tokens.json"):
            shutil.copy(a.data_dir / name, b.data_dir / name)
        await asyncio.to_thread(b.start)
        config = load_kubeconfig(a.kubeconfig, servers=[a.api_url, b.api_url])
        async with Client(config) as client:
            await client.create(CONFIGMAPS, cm("one"))
            assert client.server == a.api_url
            inf = Informer(client, CONFIGMAPS, "default")
            inf.start()
            await inf.wait_synced(10)
            assert inf.keys() == ["default/one"]
            await asyncio.to_thread(a.kill)
            await client.create(CONFIGMAPS, cm("two"))  # fails over to B
            assert client.server == b.api_url
            await until(lambda: inf.get("default/two") is not None)
            assert sorted(inf.keys()) == ["default/one", "default/two"] and inf.connected
            await inf.stop()
    finally:
        await asyncio.to_thread(a.kill)
        await asyncio.to_thread(b.kill)
