"""`podns up`: the API server, then every component, under one command.

The API server starts first (it writes `<data-dir>/kubeconfig` for users and the components'
own kubeconfigs: each component runs with its own identity and narrow rights); then each entry of
`COMPONENTS` is started in order with an `UpContext` and stopped in reverse order on SIGINT or
SIGTERM, also when the signal comes while they are still starting (`StopSignals`: the start is
cancelled and unwinds like a stop; exit code 0 either way). Adding a component is a one-line
edit: append `("name", "podns.cli.<module>:<fn>")` where
`async def <fn>(ctx: UpContext) -> AbstractAsyncContextManager` returns a context manager that
runs the component while entered. Every entry gets a `--no-<name>` flag. A module may also
define `add_up_arguments(parser)` to add its own flags to `podns up`, and
`check_up_arguments(args)` to refuse impossible combinations before anything starts.

For a new user: `preflight` checks the data dir (format file, writable, not used by another
`podns up`) and the API and DNS ports before anything starts, and bad input ends the command
with one line saying what is wrong and what to do (SystemExit, exit code 1); progress lines
follow each start, then a summary of what runs where. The components share this process, except
the cluster DNS: it runs as `podns dns` in a process of its own (`podns.cli.dns.start_dns`:
supervised, restarted when it dies, dying with `podns up`), so the control plane never takes the
GIL from its serving thread. Its metrics are on by default (a free loopback port) and their URL is
handed to the API server for the dashboard at /ui/, which scrapes them over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import importlib
import os
import re
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from podns.api.server.apiserver import ApiServer
from podns.api.server.kubeconfig import CONTROLLER_MANAGER_KUBECONFIG, DNS_KUBECONFIG
from podns.cli import datadir
from podns.cli.apiserver import add_common_arguments, host_port, start_api
from podns.cli.node import default_service_cidr
from podns.cli.signals import StopSignals

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
    kubeconfig: Path  # admin kubeconfig of the running API server (for users, not components)
    readonly_kubeconfig: Path
    controller_manager_kubeconfig: Path  # the components' own identities (kubeconfig.py)
    dns_kubeconfig: Path
    api_url: str
    dns_addr: tuple[str, int]
    node_name: str


Starter = Callable[[UpContext], Awaitable[AbstractAsyncContextManager[Any]]]


def _default_node_name() -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.")
    return name or "node-1"


def _components() -> list[tuple[str, ModuleType, Starter]]:
    """(name, module, starter) of every component, its module imported."""
    found = []
    for name, target in COMPONENTS:
        module_name, _, fn = target.partition(":")
        module = importlib.import_module(module_name)
        found.append((name, module, getattr(module, fn)))
    return found


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the API server and every component",
                                   description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--dns-addr", default="127.0.0.1:1053", type=host_port,
                        help="cluster DNS listen address host:port (default 127.0.0.1:1053)")
    parser.add_argument("--node-name", default=_default_node_name(),
                        help="name of this machine's Node object (default: the host name)")
    for comp, _target in COMPONENTS:
        parser.add_argument(f"--no-{comp}", action="store_true", dest=f"no_{comp.replace('-', '_')}",
                            help=f"do not run the {comp} component")
    for _comp, module, _starter in _components():
        extra = getattr(module, "add_up_arguments", None)
        if extra is not None:
            extra(parser)
    for action in parser._actions:
        if action.dest == "dns_metrics_addr":
            # the dashboard shows DNS query rates: podns up serves DNS metrics on a free port
            parser.set_defaults(dns_metrics_addr="127.0.0.1:0")
            action.help = ("serve DNS /metrics, /health, /ready on host:port "
                           "(default: a free port on 127.0.0.1, shown by the dashboard)")
    parser.set_defaults(run=run)


def parse_hostport(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def make_context(args: argparse.Namespace, server: ApiServer) -> UpContext:
    """The context of the components of one `podns up`."""
    assert server.kubeconfig is not None and server.readonly_kubeconfig is not None
    own = {name: Path(os.path.abspath(path)) for name, path in server.component_kubeconfigs.items()}
    return UpContext(args=args, data_dir=Path(os.path.abspath(args.data_dir)),
                     kubeconfig=Path(os.path.abspath(server.kubeconfig)),
                     readonly_kubeconfig=Path(os.path.abspath(server.readonly_kubeconfig)),
                     controller_manager_kubeconfig=own[CONTROLLER_MANAGER_KUBECONFIG],
                     dns_kubeconfig=own[DNS_KUBECONFIG],
                     api_url=server.url, dns_addr=parse_hostport(args.dns_addr),
                     node_name=args.node_name)


def check_free(addr: str, flag: str, what: str, *, udp: bool) -> None:
    """Exit with one line when `addr` cannot be bound (TCP, and UDP too when `udp`).

    Checked before anything starts, so a taken port is reported as such rather than as a
    component failing half-way through start-up; the real bind still reports its own error."""
    host, port = parse_hostport(addr)
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,):
        with socket.socket(family, kind) as s:
            if kind == socket.SOCK_STREAM:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError as exc:
                raise SystemExit(f"podns up: cannot listen on {addr} for the {what}: "
                                 f"{_why(exc, flag)}") from None


def _why(exc: OSError, flag: str) -> str:
    """What a bind error means for the user, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (f"the port is already in use (another podns up?): stop that process or pass "
                f"another {flag} host:port")
    if exc.errno == errno.EACCES:
        return f"permission denied (ports below 1024 need root): pass {flag} with a port above 1024"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"no such address on this machine: pass {flag} with a local address (127.0.0.1:PORT)"
    return f"{exc.strerror or exc}: pass another {flag}"


def _http_url(addr: tuple[str, int], path: str) -> str:
    host, port = addr
    return f"http://[{host}]:{port}{path}" if ":" in host else f"http://{host}:{port}{path}"


def _say(text: str) -> None:
    print(f"podns up: {text}", flush=True)


def _summary(ctx: UpContext, server: ApiServer, dns: Any, started: float, node: Any = None) -> str:
    """What runs where, and what to type next."""
    rows = [("API server", server.url),
            ("dashboard", f"{server.dashboard_url}  (log in with the token in {ctx.readonly_kubeconfig})"),
            ("kubeconfig", f"{ctx.kubeconfig}  (read-only: {ctx.readonly_kubeconfig})")]
    dns_host, dns_port = ctx.dns_addr
    if dns is not None:
        dns_host, dns_port = dns.dns_addr
        line = f"{dns_host}:{dns_port} (UDP and TCP), zone {dns.zone}, pid {dns.pid}"
        if dns.metrics_addr:
            line += (f"; metrics {_http_url(dns.metrics_addr, '/metrics')}, "
                     f"ready {_http_url(dns.metrics_addr, '/ready')}")
        rows.append(("cluster DNS", line))
    if not getattr(ctx.args, "no_node", False):
        rows.append(("node", ctx.node_name))
        if getattr(ctx.args, "pod_network_why", None):
            rows.append(("pod network", f"{ctx.args.pod_network} ({ctx.args.pod_network_why})"))
        if node is not None:
            rows.append(("containers", str(node.runtime_reason)))
    rows.append(("services", f"ClusterIPs from {ctx.args.service_cidr}"))
    rows.append(("data dir", str(ctx.data_dir)))
    lines = [f"podns up: ready in {time.monotonic() - started:.1f}s"]
    lines += [f"  {name:<12} {value}" for name, value in rows]
    lines += ["next:", f"  export KUBECONFIG={ctx.kubeconfig}",
              "  kubectl apply -f examples/db-headless.yaml"]
    if dns is not None:
        lines.append(f"  dig @{dns_host} -p {dns_port} db-service.default.svc.{dns.zone}")
    lines.append("Ctrl-C stops everything, pods included; the same command resumes from the data dir.")
    return "\n".join(lines)


def preflight(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The checks made before anything starts: data dir usable and not in use by another podns
    up, ports free. Exits with one line."""
    data_dir = Path(args.data_dir).absolute()
    try:
        info = datadir.prepare(data_dir)
        datadir.lock(data_dir, "podns up")
    except datadir.DataDirError as exc:
        raise SystemExit(f"podns up: {exc}") from None
    check_free(args.api_addr, "--api-addr", "API server", udp=False)
    if not getattr(args, "no_dns", False):
        check_free(args.dns_addr, "--dns-addr", "cluster DNS", udp=True)
    return data_dir, info


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    with StopSignals() as signals:
        try:
            await _run(args, signals, started)
        except asyncio.CancelledError:
            if not signals.stopped_while_starting():
                raise
    return 0


async def _run(args: argparse.Namespace, signals: StopSignals, started: float) -> None:
    """Start the API server and the components, serve until SIGINT/SIGTERM, stop in reverse
    order. A signal while starting cancels this (see `StopSignals`): what started is stopped the
    same way."""
    for comp, module, _starter in _components():
        check = getattr(module, "check_up_arguments", None)
        if check is not None and not getattr(args, f"no_{comp.replace('-', '_')}", False):
            check(args)
    if getattr(args, "service_cidr", None) is None:  # --no-node: no pod network resolved
        args.service_cidr = default_service_cidr(getattr(args, "pod_network", "loopback"),
                                                 getattr(args, "proxy_mode", "auto"))
    data_dir, info = preflight(args)
    _say(f"data dir {data_dir} (data format {info['format']})")
    _say(f"starting the API server on {args.api_addr}")
    server: ApiServer | None = None
    dns = node = None
    try:
        server = await start_api(args)
        ctx = make_context(args, server)
        _say(f"API server   {server.url}")
        async with contextlib.AsyncExitStack() as stack:
            for comp, _module, starter in _components():
                if getattr(args, f"no_{comp.replace('-', '_')}", False):
                    continue
                _say(f"starting {comp}")
                cm = await starter(ctx)
                running = await stack.enter_async_context(cm)
                if comp == "node":
                    node = running
                if comp == "dns":
                    dns = running
                    if getattr(dns, "metrics_addr", None):
                        server.ui.dns_metrics_url = _http_url(dns.metrics_addr, "/metrics")
                where = {"dns": "{}:{} (UDP and TCP)".format(*ctx.dns_addr),
                         "node": f"node {ctx.node_name}"}.get(comp, "")
                _say(f"{comp:<12} started {where}".rstrip())
            print(_summary(ctx, server, dns, started, node), flush=True)
            await signals.serve()
            print("podns up: stopping (pods, components, API server)", file=sys.stderr, flush=True)
    finally:  # also after a signal while starting: stop what was started
        if signals.requested and not signals.serving:
            print("podns up: stopping while starting (signal)", file=sys.stderr, flush=True)
        if server is not None:
            await server.stop()
            await server.store.close()
        print("podns up: stopped", file=sys.stderr, flush=True)
