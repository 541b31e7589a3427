"""A primary/replica key-value store that finds its primary by stable name.

Run as a StatefulSet behind a headless Service: the pod whose name ends in `-0` is the primary;
every other pod is a replica that connects to `<set>-0` (found through the service's SRV
records on the cluster DNS, so by stable name, not by IP) and follows its writes.

Protocol: one command per line over TCP. `SET key value` -> `OK` (primary) or
`READONLY primary=<name>` (replica); `GET key` -> `VALUE value` or `NONE`; `ROLE` ->
`primary <name>` or `replica <name> of <primary>`; `SYNC` (replicas) -> a stream of
`SET key value` lines: the whole data set, then every new write.

Environment: POD_NAME, POD_IP, KV_PORT (7379), KV_SERVICE (the headless service),
POD_NAMESPACE, CLUSTER_DNS (host:port of the cluster DNS).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from podns import lb


class Store:
    def __init__(self, name: str, primary: str) -> None:
        self.name = name
        self.primary = primary
        self.data: dict[str, str] = {}
        self.followers: set[asyncio.StreamWriter] = set()

    @property
    def is_primary(self) -> bool:
        return self.name == self.primary

    def apply(self, key: str, value: str) -> None:
        self.data[key] = value
        line = f"SET {key} {value}\n".encode()
        for w in list(self.followers):
            if w.is_closing():
                self.followers.discard(w)
            else:
                w.write(line)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                cmd, _, rest = line.decode().strip().partition(" ")
                cmd = cmd.upper()
                if cmd == "SET":
                    key, _, value = rest.partition(" ")
                    if not self.is_primary:
                        writer.write(f"READONLY primary={self.primary}\n".encode())
                    else:
                        self.apply(key, value)
                        writer.write(b"OK\n")
                elif cmd == "GET":
                    stored = self.data.get(rest)
                    writer.write(b"NONE\n" if stored is None else f"VALUE {stored}\n".encode())
                elif cmd == "ROLE":
                    role = "primary" if self.is_primary else "replica"
                    suffix = "" if self.is_primary else f" of {self.primary}"
                    writer.write(f"{role} {self.name}{suffix}\n".encode())
                elif cmd == "SYNC":
                    for k, v in self.data.items():
                        writer.write(f"SET {k} {v}\n".encode())
                    self.followers.add(writer)
                    await writer.drain()
                    await reader.read()  # keep the stream open until the replica leaves
                    return
                else:
                    writer.write(b"ERR unknown command\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.followers.discard(writer)
            writer.close()

    async def follow(self, pool: lb.Balancer) -> None:
        """Replicate from the primary by its stable name, reconnecting forever."""
        while True:
            try:
                async with pool.connection(endpoint=self.primary) as (reader, writer):
                    writer.write(b"SYNC\n")
                    await writer.drain()
                    print(f"{self.name}: following {self.primary}", flush=True)
                    while line := await reader.readline():
                        _, key, value = line.decode().rstrip("\n").split(" ", 2)
                        self.data[key] = value
            except (lb.LBError, OSError, ValueError) as exc:
                print(f"{self.name}: primary {self.primary} not reachable yet: {exc}", flush=True)
            await asyncio.sleep(0.5)


async def main() -> int:
    name = os.environ["POD_NAME"]
    ip = os.environ.get("POD_IP", "127.0.0.1")
    port = int(os.environ.get("KV_PORT", "7379"))
    service = os.environ.get("KV_SERVICE", "kv")
    namespace = os.environ.get("POD_NAMESPACE", "default")
    primary = name.rsplit("-", 1)[0] + "-0"
    store = Store(name, primary)
    server = await asyncio.start_server(store.handle, ip, port)
    print(f"{name}: serving on {ip}:{port} as {'primary' if store.is_primary else 'replica'}", flush=True)
    if store.is_primary:
        await server.serve_forever()
        return 0
    source = lb.DNS(server=os.environ.get("CLUSTER_DNS", "127.0.0.1:1053"), max_refresh=2.0)
    pool = lb.Balancer(service, port="kv", namespace=namespace, source=source)
    while True:
        try:
            await pool.start()
            break
        except lb.ResolutionError as exc:
            print(f"{name}: waiting for DNS: {exc}", flush=True)
            await asyncio.sleep(0.5)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(pool.close)
        await asyncio.gather(server.serve_forever(), store.follow(pool))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
