"""`podns apiserver`: the API server alone, over the embedded store or etcd."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from podns.api.server import DEFAULT_SERVICE_CIDR, ApiServer, parse_addr, tune_gc
from podns.store import Unavailable, open_store


def host_port(value: str) -> str:
    """argparse type of `host:port` flags: the value unchanged, or a usage error."""
    try:
        parse_addr(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `podns up` and `podns apiserver`."""
    parser.add_argument("--data-dir", default="./state", type=Path,
                        help="state, kubeconfig, tokens and certificates (default ./state)")
    parser.add_argument("--api-addr", default="127.0.0.1:6443", type=host_port,
                        help="API server listen address host:port (default 127.0.0.1:6443)")
    parser.add_argument("--store", default=None, metavar="URL",
                        help="store URL: sqlite path (default <data-dir>/podns.db), "
                             "memory://, or etcd://host:port,...")
    parser.add_argument("--service-cidr", default=DEFAULT_SERVICE_CIDR,
                        help=f"ClusterIP range for Services (default {DEFAULT_SERVICE_CIDR})")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the API server alone",
                                   description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.set_defaults(run=run)


def store_url(args: argparse.Namespace) -> str:
    """The store URL from --store, defaulting to SQLite in the data dir."""
    return args.store or os.path.join(os.path.abspath(args.data_dir), "podns.db")


async def start_api(args: argparse.Namespace) -> ApiServer:
    """Open the store and start the API server; exits with a message on a store/port error."""
    os.makedirs(args.data_dir, exist_ok=True)
    try:
        store = open_store(store_url(args))
    except (Unavailable, ValueError) as exc:
        raise SystemExit(f"podns: cannot open the store: {exc}") from None
    server = ApiServer(store, args.data_dir, args.api_addr, service_cidr=args.service_cidr)
    tune_gc()
    try:
        await server.start()
    except OSError as exc:
        await store.close()
        raise SystemExit(f"podns: cannot listen on {args.api_addr}: {exc}") from None
    return server


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def run(args: argparse.Namespace) -> int:
    server = await start_api(args)
    print(f"podns apiserver: serving {server.url} (kubeconfig {server.kubeconfig})", flush=True)
    try:
        await wait_for_signal()
    finally:
        await server.stop()
        await server.store.close()
    print("podns apiserver: stopped", file=sys.stderr, flush=True)
    return 0
