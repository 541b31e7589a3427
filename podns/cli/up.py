"""`podns up`: everything in one process — API server, then every component that exists.

The API server starts first (it writes `<data-dir>/kubeconfig`); then each entry of
`COMPONENTS` is started in order with an `UpContext` and stopped in reverse order on SIGINT or
SIGTERM. Adding a component is a one-line edit: append `("name", "podns.cli.<module>:<fn>")`
where `async def <fn>(ctx: UpContext) -> AbstractAsyncContextManager` returns a context
manager that runs the component while entered. Entries whose module does not exist yet are
skipped; every entry gets a `--no-<name>` flag. A module may also define
`add_up_arguments(parser)` to add its own flags to `podns up`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import re
import socket
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podns.api.server import ApiServer
from podns.cli.apiserver import add_common_arguments, host_port, start_api, wait_for_signal

#: (name, "module:function") of the components `podns up` runs after the API server, in
#: start order; other components append themselves here
COMPONENTS: list[tuple[str, str]] = [
    ("controllers", "podns.cli.controller_manager:start_controllers"),
    ("node", "podns.cli.node:start_node"),
    ("dns", "podns.cli.dns:start_dns"),
]


@dataclass(frozen=True, slots=True)
class UpContext:
    """What a component starter gets."""

    args: argparse.Namespace  # every `podns up` flag, including components' own
    data_dir: Path
    kubeconfig: Path  # admin kubeconfig of the running API server
    readonly_kubeconfig: Path
    api_url: str
    dns_addr: tuple[str, int]
    node_name: str


Starter = Callable[[UpContext], Awaitable[AbstractAsyncContextManager[Any]]]


def _default_node_name() -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.")
    return name or "node-1"


def _components() -> list[tuple[str, Any, str]]:
    """(name, module, function name) of the components whose module exists."""
    found = []
    for name, target in COMPONENTS:
        module_name, _, fn = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if hasattr(module, fn):
            found.append((name, module, fn))
    return found


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the API server and every component",
                                   description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--dns-addr", default="127.0.0.1:1053", type=host_port,
                        help="cluster DNS listen address host:port (default 127.0.0.1:1053)")
    parser.add_argument("--node-name", default=_default_node_name(),
                        help="name of this machine's Node object (default: the host name)")
    for comp, _target in COMPONENTS:  # flags even for components not written yet
        parser.add_argument(f"--no-{comp}", action="store_true", dest=f"no_{comp.replace('-', '_')}",
                            help=f"do not run the {comp} component")
    for _comp, module, _fn in _components():
        extra = getattr(module, "add_up_arguments", None)
        if extra is not None:
            extra(parser)
    parser.set_defaults(run=run)


def parse_hostport(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_context(args: argparse.Namespace, server: ApiServer) -> UpContext:
    """The context of the components of one `podns up`."""
    assert server.kubeconfig is not None and server.readonly_kubeconfig is not None
    return UpContext(args=args, data_dir=Path(os.path.abspath(args.data_dir)),
                     kubeconfig=Path(os.path.abspath(server.kubeconfig)),
                     readonly_kubeconfig=Path(os.path.abspath(server.readonly_kubeconfig)),
                     api_url=server.url, dns_addr=parse_hostport(args.dns_addr),
                     node_name=args.node_name)


async def run(args: argparse.Namespace) -> int:
    server = await start_api(args)
    ctx = make_context(args, server)
    print(f"podns up: API server   {server.url}", flush=True)
    print(f"podns up: kubeconfig   {ctx.kubeconfig}  (read-only: {ctx.readonly_kubeconfig})",
          flush=True)
    try:
        async with contextlib.AsyncExitStack() as stack:
            for comp, module, fn in _components():
                if getattr(args, f"no_{comp.replace('-', '_')}", False):
                    continue
                cm = await getattr(module, fn)(ctx)
                await stack.enter_async_context(cm)
                where = {"dns": "{}:{} (UDP and TCP)".format(*ctx.dns_addr),
                         "node": f"node {ctx.node_name}"}.get(comp, "")
                print(f"podns up: {comp:<12} started {where}".rstrip(), flush=True)
            print(f"podns up: ready; export KUBECONFIG={ctx.kubeconfig}", flush=True)
            await wait_for_signal()
            print("podns up: stopping", file=sys.stderr, flush=True)
    finally:
        await server.stop()
        await server.store.close()
    return 0
