"""An application on examples/postgres/: writes go to the primary, reads spread over the replicas.

    export KUBECONFIG=$PWD/state/kubeconfig     # as for kubectl
    python examples/postgres/app.py                # --dns 127.0.0.1:1053 --seconds 30: the defaults

The password is the Secret db-secret's (read through the kubeconfig: `--kubeconfig`, else
$KUBECONFIG or ~/.kube/config, else ./state/kubeconfig), or $PGPASSWORD when set.

podns.lb keeps the list of ready `db-service` pods (DNS, or a watch of its EndpointSlices). Writes
use `lb.conninfo(pool, target_session_attrs="read-write")`: libpq tries every ready pod, in ordinal
order, and keeps the one that accepts writes, so a restarted primary is found again without the
app knowing which pod it is. Reads go round robin over the ready pods (`pool.pick()`), preferring
standbys (libpq's `prefer-standby`, per pick): a pod that turns out to be the primary is skipped
while a standby is usable. A pod that fails is reported to the pool, which ejects it; a deleted
pod leaves the pool as soon as it is terminating.

It runs for `--seconds` (or until Ctrl-C / SIGTERM), then checks that every write the primary
acknowledged is there, and prints a JSON report: writes acknowledged, lost (acknowledged but
missing: must be 0), reads per pod, and the errors seen (kind, count, first and last time)
while pods were deleted or restarted.
Needs psycopg (`pip install 'podns[examples]'`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psycopg

from podns import lb
from podns.kube.client import Client
from podns.kube.config import Config, load_kubeconfig
from podns.kube.errors import ConfigError, KubeError
from podns.kube.resources import Resource

SECRETS = Resource("", "v1", "secrets", "Secret")
#: the Secret holding the password (examples/postgres/01-secret.yaml, or one made with kubectl)
SECRET = "db-secret"
#: where ./run.sh writes the admin kubeconfig (relative to the repository)
LOCAL_KUBECONFIG = "state/kubeconfig"
#: seconds a connection attempt may take before the next pod is tried
CONNECT_TIMEOUT = 2
#: pause after a failed write or read, so a restarting primary is not hammered
RETRY_PAUSE = 0.2


@dataclass
class Report:
    """What the run saw; `lost` must stay empty."""

    acknowledged: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    reads: Counter[str] = field(default_factory=Counter)
    read_from_primary: int = 0
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def error(self, doing: str, exc: BaseException) -> None:
        """Count an error by what was being done and its type (first line of its message kept)."""
        key = f"{doing}: {type(exc).__name__}"
        now = round(time.time() - self.started, 3)
        example = (str(exc).splitlines() or [""])[0]
        seen = self.errors.setdefault(key, {"count": 0, "first": now, "example": example})
        seen["count"] += 1
        seen["last"] = now

    def as_dict(self) -> dict[str, Any]:
        return {"writes_acknowledged": len(self.acknowledged), "lost": self.lost,
                "reads": dict(self.reads), "read_from_primary": self.read_from_primary,
                "errors": self.errors, "seconds": round(time.time() - self.started, 1)}


class App:
    """The writer and the readers, sharing one pool."""

    def __init__(self, pool: lb.Balancer, *, password: str, use_names: bool) -> None:
        self.pool = pool
        self.password = password
        self.use_names = use_names
        self.report = Report()
        self._writer: psycopg.AsyncConnection[Any] | None = None
        self._readers: dict[str, psycopg.AsyncConnection[Any]] = {}
        self._primaries: set[str] = set()  # endpoint keys last seen not in recovery

    async def _connect(self, conninfo: str) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(conninfo, password=self.password, autocommit=True)

    async def setup(self) -> None:
        conn = await self._connect(self._write_conninfo())
        async with conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS app_writes (id bigint PRIMARY KEY, "
                               "at timestamptz NOT NULL DEFAULT now())")
            row = await (await conn.execute("SELECT coalesce(max(id), 0) FROM app_writes")).fetchone()
        self.next_id = int(row[0] if row else 0) + 1

    def _write_conninfo(self) -> str:
        return lb.conninfo(self.pool, user="postgres", dbname="postgres", use_names=self.use_names,
                           target_session_attrs="read-write", connect_timeout=CONNECT_TIMEOUT)

    async def write_once(self) -> None:
        """Insert the next id on the primary; it counts as acknowledged once the commit returned."""
        wid = self.next_id
        self.next_id += 1
        try:
            if self._writer is None or self._writer.closed:
                self._writer = await self._connect(self._write_conninfo())
            await self._writer.execute("INSERT INTO app_writes (id) VALUES (%s)", (wid,))
        except (psycopg.Error, OSError) as exc:
            self.report.error("write", exc)
            await self._drop_writer()
            await asyncio.sleep(RETRY_PAUSE)
            return
        self.report.acknowledged.append(wid)

    async def _drop_writer(self) -> None:
        if self._writer is not None:
            conn, self._writer = self._writer, None
            await conn.close()

    def _pick_reader(self) -> lb.Endpoint:
        """Round robin over the ready pods, preferring standbys: a pick that is a known primary is
        replaced by the next pick while some ready pod is not known to be one."""
        ready = [e for e in self.pool.endpoints if e.usable]
        ep = self.pool.pick()
        for _ in range(len(ready)):
            if ep.key not in self._primaries or all(e.key in self._primaries for e in ready):
                break
            ep = self.pool.pick()
        return ep

    async def read_once(self) -> None:
        """One read on a picked pod, on that pod's own connection."""
        try:
            ep = self._pick_reader()
        except lb.LBError as exc:
            self.report.error("read", exc)
            await asyncio.sleep(RETRY_PAUSE)
            return
        try:
            conn = self._readers.get(ep.key)
            if conn is None or conn.closed:
                conn = self._readers[ep.key] = await self._connect(lb.conninfo(
                    [ep], user="postgres", dbname="postgres", use_names=False,
                    target_session_attrs="any", connect_timeout=CONNECT_TIMEOUT))
            cur = await conn.execute("SELECT pg_is_in_recovery(), count(*) FROM app_writes")
            row = await cur.fetchone()
        except (psycopg.Error, OSError) as exc:
            self.report.error("read", exc)
            self.pool.report_failure(ep)
            conn = self._readers.pop(ep.key, None)
            if conn is not None:
                await conn.close()
            await asyncio.sleep(RETRY_PAUSE)
            return
        self.pool.report_success(ep)
        standby = bool(row and row[0])
        (self._primaries.discard if standby else self._primaries.add)(ep.key)
        self.report.reads[ep.hostname or ep.address] += 1
        if not standby:
            self.report.read_from_primary += 1

    async def run(self, seconds: float, readers: int) -> Report:
        """Write and read until `seconds` have passed or SIGINT/SIGTERM, then verify."""
        deadline = time.monotonic() + seconds
        stop = asyncio.Event()
        loop_ = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop_.add_signal_handler(sig, stop.set)

        async def loop(step: Any) -> None:
            while time.monotonic() < deadline and not stop.is_set():
                await step()

        await asyncio.gather(loop(self.write_once), *(loop(self.read_once) for _ in range(readers)))
        await self.verify()
        return self.report

    async def verify(self, timeout: float = 60.0) -> None:
        """Every acknowledged id must be on the primary (retried while it is still restarting)."""
        acked = set(self.report.acknowledged)
        end = time.monotonic() + timeout
        while True:
            try:
                conn = await self._connect(self._write_conninfo())
                async with conn:
                    cur = await conn.execute("SELECT id FROM app_writes WHERE id = ANY(%s)", (sorted(acked),))
                    found = {int(r[0]) for r in await cur.fetchall()}
                self.report.lost = sorted(acked - found)
                return
            except (psycopg.Error, OSError) as exc:
                self.report.error("verify", exc)
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        await self._drop_writer()
        for conn in self._readers.values():
            await conn.close()


def kube_config(path: str | None) -> Config:
    """The kubeconfig at `path`; None: $KUBECONFIG or ~/.kube/config, else ./state/kubeconfig
    (where ./run.sh writes it). Raises ConfigError."""
    try:
        return load_kubeconfig(path)
    except ConfigError:
        if path is not None or not os.path.exists(LOCAL_KUBECONFIG):
            raise
        return load_kubeconfig(LOCAL_KUBECONFIG)


async def secret_password(kubeconfig: str | None, namespace: str) -> str | None:
    """The `password` of the Secret db-secret, read through `kube_config(kubeconfig)`; None,
    said on stderr, when it cannot be read."""
    try:
        async with Client(kube_config(kubeconfig)) as client:
            secret = await client.get(SECRETS, SECRET, namespace)
        return base64.b64decode((secret.get("data") or {})["password"]).decode()
    except (ConfigError, KubeError, KeyError, ValueError) as exc:
        print(f"app.py: cannot read the password from Secret {namespace}/{SECRET} ({exc}); "
              "set PGPASSWORD or KUBECONFIG", file=sys.stderr)
        return None


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dns", default="127.0.0.1:1053", help="cluster DNS address (host:port)")
    ap.add_argument("--kubeconfig", help="watch EndpointSlices through this kubeconfig instead of DNS")
    ap.add_argument("--service", default="db-service")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to keep writing and reading")
    ap.add_argument("--readers", type=int, default=2, help="concurrent readers")
    ap.add_argument("--names", action="store_true",
                    help="connect by stable pod names (inside a pod, whose resolver is the cluster "
                         "DNS) instead of addresses (the host's resolver does not know the zone)")
    args = ap.parse_args(argv)
    password = os.environ.get("PGPASSWORD") or await secret_password(args.kubeconfig, args.namespace)
    if not password:
        return 2
    source: Any = lb.Watch(args.kubeconfig) if args.kubeconfig else lb.DNS(server=args.dns)
    async with lb.Balancer(args.service, port="postgres", namespace=args.namespace, source=source,
                           policy="round_robin") as pool:
        app = App(pool, password=password, use_names=args.names)
        await app.setup()
        try:
            report = await app.run(args.seconds, args.readers)
        finally:
            await app.close()
    print(json.dumps(report.as_dict(), indent=2), flush=True)
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
