"""Peer discovery through a headless Service, as Elasticsearch and Cassandra do it.

Each pod of a StatefulSet looks up its own headless Service (`publishNotReadyAddresses: true`,
so peers are listed before they are ready), and reports itself ready only once it has seen the
expected number of peers: the cluster forms without a seed list and without waiting for DNS
to publish ready pods only. Every pod serves `PEERS` -> `PEERS name1,name2,...` on its port.

The pod's readiness is a second port (PEERS_READY_PORT, 7001) that opens only once the cluster has
formed; a tcpSocket readiness probe on it turns the pod Ready.

Environment: POD_NAME, POD_IP, PEERS_PORT (7000), PEERS_READY_PORT (7001), PEERS_SERVICE,
POD_NAMESPACE, CLUSTER_DNS, PEERS_EXPECTED (how many members make a cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from podns import lb


async def main() -> int:
    name = os.environ["POD_NAME"]
    ip = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("PEERS_PORT", "7000"))
    expected = int(os.environ.get("PEERS_EXPECTED", "3"))
    source = lb.DNS(server=os.environ.get("CLUSTER_DNS", "127.0.0.1:1053"), max_refresh=1.0)
    pool = lb.Balancer(
        os.environ.get("PEERS_SERVICE", "peers"),
        port="gossip",
        namespace=os.environ.get("POD_NAMESPACE", "default"),
        source=source,
    )
    peers: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while line := await reader.readline():
                if line.strip().upper() == b"PEERS":
                    writer.write(f"PEERS {','.join(peers)}\n".encode())
                else:
                    writer.write(b"ERR\n")
                await writer.drain()
        writer.close()

    await asyncio.start_server(handle, ip, port)  # serves until the pod is stopped
    ready_port = int(os.environ.get("PEERS_READY_PORT", "7001"))
    while True:
        try:
            await pool.start()
            break
        except lb.ResolutionError:
            await asyncio.sleep(0.5)
    announced = False
    while True:
        peers[:] = sorted({e.hostname or e.address for e in pool.endpoints})
        if len(peers) >= expected and not announced:
            print(f"{name}: cluster formed with {', '.join(peers)}", flush=True)
            await asyncio.start_server(handle, ip, ready_port)
            announced = True
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
