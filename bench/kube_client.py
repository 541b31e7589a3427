"""Benchmark: podns.kube against the official `kubernetes` Python client, side by side.

Starts a `podns apiserver` (in-memory store) on loopback, creates `--n` ConfigMaps, then
measures, alternating the clients in each round:

- list: one List of all objects (podns `Client.list` vs `CoreV1Api.list_namespaced_config_map`
  with model deserialisation, and the official client's raw mode `_preload_content=False` +
  `json.loads`, its fastest path);
- watch latency: the time from issuing a patch to its MODIFIED event arriving at a watcher
  (so it includes the write's round trip); podns `Client.watch` and
  `kubernetes.watch.Watch().stream` each run in a thread of their own, for `--events` patches.

Run: .venv/bin/python bench/kube_client.py [--n 2000] [--events 200] [--rounds 15]
Prints medians and ratios. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import kubernetes  # noqa: E402
from _common import pct  # noqa: E402

from podns.kube.client import Client  # noqa: E402
from podns.kube.resources import CONFIGMAPS  # noqa: E402

NS = "default"


async def start_api(data_dir: str) -> tuple[asyncio.subprocess.Process, Path]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "podns", "apiserver", "--data-dir", data_dir,
        "--api-addr", "127.0.0.1:0", "--store", "memory://",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    match = re.search(r"\(kubeconfig (\S+)\)", line)
    if not match:
        raise SystemExit(f"apiserver did not start: {line!r}")
    return proc, Path(match.group(1))


def cm(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"bench-{i}", "namespace": NS, "labels": {"bench": "yes"}},
            "data": {"key": "v" * 200, "n": str(i)}}


async def populate(client: Client, n: int) -> None:
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        async with sem:
            await client.create(CONFIGMAPS, cm(i))

    await asyncio.gather(*(one(i) for i in range(n)))


async def podns_list(client: Client) -> float:
    t0 = time.perf_counter()
    result = await client.list(CONFIGMAPS, NS)
    assert result["items"]
    return time.perf_counter() - t0


def official_list(api: Any, raw: bool) -> float:
    t0 = time.perf_counter()
    if raw:
        resp = api.list_namespaced_config_map(NS, _preload_content=False)
        assert json.loads(resp.data)["items"]
    else:
        assert api.list_namespaced_config_map(NS).items
    return time.perf_counter() - t0


async def send_stamps(writer: Client, stamps: Iterable[str], pending: dict[str, float],
                      lock: threading.Lock, got_all: threading.Event) -> None:
    """The writer side of both watch-latency runs, the same for each client measured: patch
    each stamp into ConfigMap bench-0 (send time in `pending`), 2 ms apart, then wait up to
    30 s for the watcher to set `got_all`."""
    for stamp in stamps:
        with lock:
            pending[stamp] = time.perf_counter()
        await writer.patch(CONFIGMAPS, "bench-0", {"data": {"stamp": stamp}}, NS)
        await asyncio.sleep(0.002)
    await asyncio.to_thread(got_all.wait, 30)


async def podns_watch_latency(kubeconfig: Path, writer: Client, events: int) -> list[float]:
    rv = (await writer.list(CONFIGMAPS, NS, limit=1))["metadata"]["resourceVersion"]
    latencies: list[float] = []
    pending: dict[str, float] = {}
    lock = threading.Lock()
    got_all = threading.Event()
    opened = threading.Event()

    async def watch() -> None:
        async with Client.from_kubeconfig(kubeconfig) as client:
            async for ev in client.watch(CONFIGMAPS, NS, resource_version=rv,
                                         on_open=opened.set):
                if ev.type != "MODIFIED":
                    continue
                stamp = (ev.object.get("data") or {}).get("stamp")
                now = time.perf_counter()
                with lock:
                    sent = pending.pop(stamp, None)
                if sent is not None:
                    latencies.append(now - sent)
                    if len(latencies) == events:
                        got_all.set()
                        return

    thread = threading.Thread(target=asyncio.run, args=(watch(),), daemon=True)
    thread.start()
    await asyncio.to_thread(opened.wait, 30)
    await send_stamps(writer, (f"p{i}" for i in range(events)), pending, lock, got_all)
    return latencies


async def official_watch_latency(api: Any, writer: Client, events: int) -> list[float]:
    rv = (await writer.list(CONFIGMAPS, NS, limit=1))["metadata"]["resourceVersion"]
    latencies: list[float] = []
    pending: dict[str, float] = {}
    lock = threading.Lock()
    got_all = threading.Event()
    watcher = kubernetes.watch.Watch()

    def consume() -> None:
        try:
            _consume()
        except Exception as exc:
            print(f"official watch failed: {exc!r}", file=sys.stderr)
            got_all.set()

    def _consume() -> None:
        for ev in watcher.stream(api.list_namespaced_config_map, NS, resource_version=rv,
                                 timeout_seconds=60):
            if ev["type"] != "MODIFIED":
                continue
            stamp = (ev["object"].data or {}).get("stamp")
            now = time.perf_counter()
            with lock:
                sent = pending.pop(stamp, None)
            if sent is not None:
                latencies.append(now - sent)
                if len(latencies) == events:
                    got_all.set()
                    watcher.stop()
                    return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    await asyncio.sleep(0.5)  # the official stream has no "opened" hook
    await send_stamps(writer, (f"o{i}-{time.monotonic_ns()}" for i in range(events)), pending, lock,
                      got_all)
    return latencies


def ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, kubeconfig = await start_api(tmp)
        try:
            kubernetes.config.load_kube_config(config_file=str(kubeconfig))
            api = kubernetes.client.CoreV1Api()
            async with Client.from_kubeconfig(kubeconfig) as client, \
                    Client.from_kubeconfig(kubeconfig) as writer:
                await populate(writer, args.n)
                lists: dict[str, list[float]] = {"podns": [], "official": [], "official-raw": []}
                for _ in range(args.rounds):
                    lists["podns"].append(await podns_list(client))
                    lists["official"].append(await asyncio.to_thread(official_list, api, False))
                    lists["official-raw"].append(await asyncio.to_thread(official_list, api, True))
                pw: list[float] = []
                ow: list[float] = []
                for _ in range(2):  # alternate, so drift in the server's state hits both
                    pw += await podns_watch_latency(kubeconfig, writer, args.events)
                    ow += await official_watch_latency(api, writer, args.events)
        finally:
            proc.terminate()
            await proc.wait()
    print(f"n={args.n} ConfigMaps (~300 B each), list median of {args.rounds} rounds; "
          f"watch latency over 2x{args.events} patches")
    print(f"{'metric':34}{'podns.kube':>12}{'kubernetes':>12}{'ratio':>8}")
    p, o, r = ms(lists["podns"]), ms(lists["official"]), ms(lists["official-raw"])
    print(f"{'list ms (models)':34}{p:12.1f}{o:12.1f}{o / p:8.2f}")
    print(f"{'list ms (raw json)':34}{p:12.1f}{r:12.1f}{r / p:8.2f}")
    print(f"{'watch latency p50 ms':34}{ms(pw):12.2f}{ms(ow):12.2f}{ms(ow) / ms(pw):8.2f}")
    p99w, p99o = pct(pw, 0.99) * 1000, pct(ow, 0.99) * 1000
    print(f"{'watch latency p99 ms':34}{p99w:12.2f}{p99o:12.2f}{p99o / p99w:8.2f}")


if __name__ == "__main__":
    asyncio.run(main())
