"""Node registration and heartbeat against a real API server (`podns apiserver`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.resources import LEASES, NODES
from podns.node.heartbeat import LEASE_NAMESPACE, Heartbeat
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


async def test_register_renew_and_reregister(start_podns: Callable[..., Podns]) -> None:
    """given a Heartbeat renewing every 0.2 s, the Node has the kubelet's status fields, the Lease's
    renewTime advances, and a deleted Node is registered again."""
    api = start_podns(command="apiserver")
    client = Client.from_kubeconfig(api.kubeconfig)
    hb = Heartbeat(client, name="hb-node", host_ip="127.0.0.1", port=12345, pod_cidr="127.50.0.0/16")
    try:
        await hb.register()
        node = await client.get(NODES, "hb-node")
        st = node["status"]
        assert node["spec"]["podCIDR"] == "127.50.0.0/16"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "hb-node"
        assert {c["type"]: c["status"] for c in st["conditions"]} == {
            "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
        assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 12345
        assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
        assert int(st["capacity"]["pods"]) >= 110 and st["nodeInfo"]["kubeletVersion"]
        lease = await client.get(LEASES, "hb-node", LEASE_NAMESPACE)
        assert lease["spec"]["holderIdentity"] == "hb-node" and lease["spec"]["leaseDurationSeconds"] == 40
        first = lease["spec"]["renewTime"]
        hb.start(renew_every=0.2)
        await asyncio.sleep(0.7)
        lease = await client.get(LEASES, "hb-node", LEASE_NAMESPACE)
        assert lease["spec"]["renewTime"] > first
        await client.delete(NODES, "hb-node")
        for _ in range(50):
            await asyncio.sleep(0.1)
            try:
                await client.get(NODES, "hb-node")
                break
            except errors.NotFound:
                continue
        else:
            raise AssertionError("the deleted Node was not registered again")
    finally:
        await hb.stop()
        await client.close()
