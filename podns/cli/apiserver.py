"""`podns apiserver`: the API server alone, over the embedded store or etcd.

Distributed mode runs several of these over one etcd cluster. They must share one CA and one
token set, so a client (kubectl, any podns component) trusts and is trusted by all of them:
the first server creates them in its data dir, the others start with `--pki-from FIRST_DIR`,
which copies `ca.crt`, `ca.key`, `tokens.json` and `sa.key` (the ServiceAccount token signing
key) into their own data dir (on another machine, copy those four files). `--peer-servers URL,...`
lists the other API servers, so the kubeconfig each server writes names them all (this server
first) and components fail over.
"""

from __future__ import annotations

import argparse
import asyncio
import filecmp
import os
import re
import sys
from pathlib import Path
from typing import Any

from podns.api.handlers.eventttl import DEFAULT_EVENT_TTL
from podns.api.resources.service import NODE_PORT_RANGE
from podns.api.server.apiserver import DEFAULT_SERVICE_CIDR, ApiServer, parse_addr, tune_gc
from podns.api.server.authentication import write_private
from podns.api.statuserror import ApiError
from podns.cli import datadir, flags
from podns.cli.signals import StopSignals
from podns.node.servicecidr import NETNS_SERVICE_CIDR
from podns.store import EtcdTLS, Store, StoreError, Unavailable, open_store


def host_port(value: str) -> str:
    """argparse type of `host:port` flags: the value unchanged, or a usage error."""
    try:
        parse_addr(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")


def duration(text: str) -> float:
    """argparse type of duration flags, in Go's notation (`1h`, `30m`, `1h30m`, `2.5s`, `0`):
    seconds, or a usage error."""
    value = text.strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with a unit, like 1h, 30m, 90s or 1h30m")
    return total


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `podns up` and `podns apiserver`."""
    parser.add_argument("--data-dir", default="./state", type=Path,
                        help="state, kubeconfig, tokens and certificates (default ./state)")
    parser.add_argument("--api-addr", default="127.0.0.1:6443", type=host_port,
                        help="API server listen address host:port (default 127.0.0.1:6443)")
    parser.add_argument("--store", default=None, metavar="URL",
                        help="store URL: sqlite path (default <data-dir>/podns.db), "
                             "memory://, or etcd://host:port,...")
    parser.add_argument("--service-cidr", default=None, type=flags.service_cidr,
                        help="ClusterIP range for Services: one CIDR, or an IPv4 and an IPv6 one "
                             f"(default: {NETNS_SERVICE_CIDR} when podns up runs its node with "
                             "--pod-network netns, where the node NATs ClusterIPs in the kernel; "
                             f"else {DEFAULT_SERVICE_CIDR}, a loopback range the userspace proxy of "
                             "loopback-mode nodes can listen on)")
    parser.add_argument("--service-node-port-range", default=NODE_PORT_RANGE, type=flags.port_range,
                        metavar="FIRST-LAST",
                        help="node ports of NodePort and LoadBalancer Services (default "
                             f"{NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}, as kube-apiserver)")
    for flag, what in (("cafile", "the CA that signed etcd's serving certificate"),
                       ("certfile", "client certificate for etcd's --client-cert-auth"),
                       ("keyfile", "key of --etcd-certfile")):
        parser.add_argument(f"--etcd-{flag}", type=Path, default=None, metavar="FILE",
                            help=f"etcd over TLS (as kube-apiserver): {what}")
    parser.add_argument("--audit-log", default=None, metavar="FILE",
                        help="append one JSON line per request to FILE (`-`: standard output), as "
                             "kube-apiserver's audit log at the Metadata level: user, verb, "
                             "resource, namespace, name, status code, latency")
    parser.add_argument("--event-ttl", default=DEFAULT_EVENT_TTL, type=duration,
                        metavar="DURATION",
                        help="delete Events this long after their last occurrence, like "
                             "kube-apiserver's --event-ttl: 1h, 30m, 90s, 1h30m (default 1h; "
                             "0 keeps them forever)")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the API server alone",
                                   description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--pki-from", default=None, type=Path, metavar="DIR",
                        help="data dir of another API server of this cluster: share its CA and "
                             "tokens (copies " + ", ".join(SHARED_FILES) + ")")
    parser.add_argument("--peer-servers", default="", type=server_list, metavar="URL,...",
                        help="the other API servers of this cluster (https://host:port,...), "
                             "listed in the kubeconfig this server writes")
    parser.add_argument("--dns-metrics-url", default=None, metavar="URL",
                        help="Prometheus /metrics URL of a cluster DNS server (podns dns "
                             "--metrics-addr): the dashboard at /ui/ shows its query rates")
    parser.add_argument("--store-wait", type=flags.seconds, default=STORE_WAIT, metavar="SECONDS",
                        help=f"how long to wait at start-up for the store to answer "
                             f"(default {STORE_WAIT:g})")
    parser.set_defaults(run=run)


#: what API servers of one cluster share: the CA (clients trust every server), the tokens and the
#: ServiceAccount token key (a token one server issued is valid at every other)
SHARED_FILES = ("ca.crt", "ca.key", "tokens.json", "sa.key")


def server_list(text: str) -> list[str]:
    """`--peer-servers`: comma-separated http(s) URLs."""
    urls = [u.strip().rstrip("/") for u in text.split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("https://", "http://")) or url.count(":") < 2:
            raise argparse.ArgumentTypeError(
                f"peer server {url!r} is not a URL like https://127.0.0.1:6443")
    return urls


def share_pki(source: Path, data_dir: Path) -> None:
    """Copy the CA and tokens of another API server's data dir into `data_dir`.

    Files already present must be identical (a server keeps its identity across restarts, and
    two different CAs in one cluster would make clients distrust one server); raises
    SystemExit with a message naming the file otherwise, or when `source` lacks one.
    """
    missing = [n for n in SHARED_FILES if not (source / n).is_file()]
    if missing:
        raise SystemExit(f"podns: --pki-from {source}: missing {', '.join(missing)} "
                         "(start the first API server there before the others)")
    data_dir.mkdir(parents=True, exist_ok=True)
    for name in SHARED_FILES:
        src, dst = source / name, data_dir / name
        if dst.exists():
            if not filecmp.cmp(src, dst, shallow=False):
                raise SystemExit(f"podns: {dst} differs from {src}: this data dir belongs to "
                                 "another cluster (use an empty --data-dir)")
            continue
        write_private(dst, src.read_bytes())  # 0600 from its first byte


def store_url(args: argparse.Namespace) -> str:
    """The store URL from --store, defaulting to SQLite in the data dir."""
    return args.store or os.path.join(os.path.abspath(args.data_dir), "podns.db")


def etcd_tls(args: argparse.Namespace) -> EtcdTLS | None:
    """--etcd-cafile/--etcd-certfile/--etcd-keyfile (None when none is given); ValueError when
    they are given for a store that is not etcd."""
    files = (getattr(args, "etcd_cafile", None), getattr(args, "etcd_certfile", None),
             getattr(args, "etcd_keyfile", None))
    if not any(files):
        return None
    if not store_url(args).startswith("etcd"):
        raise ValueError("--etcd-cafile/--etcd-certfile/--etcd-keyfile need --store etcd://...")
    return EtcdTLS(*files)


async def start_api(args: argparse.Namespace) -> ApiServer:
    """Open the store and start the API server; exits with a message on a store/port error."""
    os.makedirs(args.data_dir, mode=0o700, exist_ok=True)
    try:
        store = open_store(store_url(args), etcd_tls=etcd_tls(args))
    except (Unavailable, ValueError) as exc:
        raise SystemExit(f"podns: cannot open the store: {exc}") from None
    server = ApiServer(store, args.data_dir, args.api_addr,
                       service_cidr=args.service_cidr or DEFAULT_SERVICE_CIDR,
                       node_port_range=args.service_node_port_range,
                       dns_metrics_url=getattr(args, "dns_metrics_url", None),
                       event_ttl=getattr(args, "event_ttl", DEFAULT_EVENT_TTL),
                       audit_log=getattr(args, "audit_log", None))
    tune_gc()
    try:
        await wait_for_store(store, store_url(args), getattr(args, "store_wait", STORE_WAIT))
    except asyncio.CancelledError:  # a signal while starting (podns up): nothing stays open
        await store.close()
        raise
    try:
        await server.start()
    except OSError as exc:
        await store.close()
        if exc.filename is not None and exc.filename == getattr(args, "audit_log", None):
            raise SystemExit(f"podns: --audit-log {exc.filename}: {exc.strerror or exc}") from None
        raise SystemExit(f"podns: cannot listen on {args.api_addr}: {exc}") from None
    except ApiError as exc:  # the store failed again between the wait and the first writes
        await server.stop()
        await store.close()
        raise SystemExit(f"podns: the store at {store_url(args)} failed: {exc}") from None
    except asyncio.CancelledError:  # a signal while starting (podns up): nothing stays open
        await server.stop()
        await store.close()
        raise
    return server


#: seconds the API server waits at start-up for its store to answer (an etcd cluster started
#: at the same time elects a leader first); it says what it waits for every STORE_WAIT_REPORT
STORE_WAIT = 60.0
STORE_WAIT_REPORT = 5.0


async def wait_for_store(store: Store, url: str, timeout: float = STORE_WAIT) -> None:
    """Return once the store answers; SystemExit with the last error after `timeout` seconds
    (the store is closed then). Saying what it waits for, instead of a traceback, is the point:
    an API server started before its etcd cluster is normal in distributed mode."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    next_report = loop.time() + STORE_WAIT_REPORT
    while True:
        try:
            await store.current_rv()
            return
        except StoreError as exc:
            if loop.time() >= deadline:
                await store.close()
                raise SystemExit(f"podns: the store at {url} did not answer within "
                                 f"{timeout:g}s: {exc}") from None
            if loop.time() >= next_report:
                print(f"podns: waiting for the store at {url}: {exc}", file=sys.stderr, flush=True)
                next_report = loop.time() + STORE_WAIT_REPORT
        await asyncio.sleep(0.5)


def advertise_peers(server: ApiServer, peers: list[str]) -> None:
    """Rewrite the kubeconfigs to list this server first, then its peers."""
    server.write_kubeconfigs([server.url] + [p for p in peers if p != server.url])


def preflight(args: argparse.Namespace) -> None:
    """The data-dir checks of `podns up` (datadir.py): usable, of a format this podns reads, and
    not in use by another podns; exits with one line. Each API server of a cluster has its own
    data dir (`--pki-from` only reads another's files), so each holds its own lock."""
    data_dir = Path(args.data_dir).absolute()
    try:
        datadir.prepare(data_dir)
        datadir.lock(data_dir, "podns apiserver")
    except datadir.DataDirError as exc:
        raise SystemExit(f"podns apiserver: {exc}") from None


async def run(args: argparse.Namespace) -> int:
    preflight(args)
    if args.pki_from is not None:
        share_pki(args.pki_from, Path(args.data_dir))
    with StopSignals() as signals:  # a signal while the store or server starts unwinds the start
        try:
            server = await start_api(args)
        except asyncio.CancelledError:
            if not signals.stopped_while_starting():
                raise
            print("podns apiserver: stopped while starting (signal)", file=sys.stderr, flush=True)
            return 0
        if args.peer_servers:
            advertise_peers(server, args.peer_servers)
        print(f"podns apiserver: serving {server.url} (kubeconfig {server.kubeconfig})", flush=True)
        try:
            await signals.serve()
        finally:
            await server.stop()
            await server.store.close()
    print("podns apiserver: stopped", file=sys.stderr, flush=True)
    return 0
