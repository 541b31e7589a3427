"""`podns dns`: the cluster DNS server alone, against any Kubernetes-compatible API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from podns.cli.signals import wait_for_signal
from podns.cli.supervisor import ChildFailed, Supervised, die_with_parent, report
from podns.clusterdns.config import DEFAULT_TTL, POD_MODES, ConfigError, parse
from podns.clusterdns.forward import upstreams_from_resolv_conf
from podns.clusterdns.wiring import ClusterDNS
from podns.kube.client import Client
from podns.kube.errors import ConfigError as KubeConfigError


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the cluster DNS server",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=None,
                        help="kubeconfig of the API server to watch (default: in a pod, its "
                             "ServiceAccount; else $KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--listen", default="127.0.0.1:53",
                        help="UDP+TCP address host:port (default 127.0.0.1:53)")
    parser.add_argument("--zone", default="cluster.local", help="cluster domain (default cluster.local)")
    parser.add_argument("--upstream", action="append", default=None, metavar="ADDR",
                        help="resolver for names outside the zone (repeatable; default: the nameservers "
                             "of /etc/resolv.conf; 'none': answer REFUSED)")
    parser.add_argument("--metrics-addr", default=None, metavar="ADDR",
                        help="serve /metrics, /health, /ready on host:port (default: off)")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL,
                        help=f"record TTL in seconds (default {DEFAULT_TTL})")
    parser.add_argument("--pods", choices=POD_MODES, default="insecure",
                        help="pod records a-b-c-d.<ns>.pod.<zone> (default insecure)")
    parser.add_argument("--workers", type=int, default=1,
                        help="serving processes sharing the address with SO_REUSEPORT (default 1); "
                             "each runs its own informers")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    # set by a supervising parent (`podns up`, or the first `podns dns` for its workers): die
    # with that process, and print the JSON report the supervisor waits for
    parser.add_argument("--parent-pid", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--report", action="store_true", help=argparse.SUPPRESS)
    parser.set_defaults(run=run)


def upstream_list(values: list[str] | None) -> list[str]:
    """--upstream values (comma lists allowed; 'resolv.conf' = its nameservers; 'none' = nothing);
    no value at all means resolv.conf."""
    if values is None:
        values = ["resolv.conf"]
    out: list[str] = []
    for value in values:
        for v in (v.strip() for v in value.split(",")):
            if v == "resolv.conf":
                out += [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in upstreams_from_resolv_conf()]
            elif v and v != "none":
                out.append(v)
    return out


def build(args: argparse.Namespace, client: Any) -> ClusterDNS:
    """A ClusterDNS from parsed arguments (used by `podns dns` and `podns up`); exits on bad config."""
    try:
        config = parse(listen=args.listen, zone=args.zone, ttl=args.ttl, pods=args.pods,
                       upstreams=upstream_list(args.upstream), metrics_addr=args.metrics_addr,
                       workers=getattr(args, "workers", 1), worker=getattr(args, "worker", False))
    except ConfigError as exc:
        raise SystemExit(f"podns dns: {exc}") from None
    return ClusterDNS(config, client)


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    """`podns up` flags of the DNS component (it listens on --dns-addr)."""
    parser.add_argument("--dns-zone", default="cluster.local", help="cluster domain (default cluster.local)")
    parser.add_argument("--dns-upstream", action="append", default=None, metavar="ADDR",
                        help="resolver for names outside the zone (repeatable; default 'resolv.conf': "
                             "the nameservers of /etc/resolv.conf; 'none': answer REFUSED)")
    parser.add_argument("--dns-ttl", type=int, default=DEFAULT_TTL, help="DNS record TTL (default 5)")
    parser.add_argument("--dns-pods", choices=POD_MODES, default="insecure",
                        help="pod records a-b-c-d.<ns>.pod.<zone> (default insecure)")
    parser.add_argument("--dns-metrics-addr", default=None, metavar="ADDR",
                        help="serve DNS /metrics, /health, /ready on host:port (default: off)")
    parser.add_argument("--dns-workers", type=int, default=1, metavar="N",
                        help="DNS serving processes sharing --dns-addr with SO_REUSEPORT (default 1)")


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class DNSProcess:
    """The cluster DNS of `podns up`, running as `podns dns` in a supervised process of its own
    (so the control plane never holds the GIL its serving thread needs). Its address, zone and
    metrics address are what the running child reported."""

    supervised: Supervised
    zone: str
    dns_addr: tuple[str, int]
    metrics_addr: tuple[str, int] | None

    @property
    def pid(self) -> int | None:
        return self.supervised.pid

    def update(self, report: dict[str, Any]) -> None:
        self.dns_addr = (report["dns"][0], int(report["dns"][1]))
        metrics = report.get("metrics")
        self.metrics_addr = (metrics[0], int(metrics[1])) if metrics else None


def dns_argv(ctx: Any, previous: dict[str, Any] | None) -> list[str]:
    """The `podns dns` command line `podns up` runs; after a crash (`previous` is the last
    child's report) the restarted child binds the same DNS and metrics ports."""
    a = ctx.args
    listen, metrics = _hostport(*ctx.dns_addr), a.dns_metrics_addr
    if previous is not None:
        listen = _hostport(*previous["dns"])
        metrics = _hostport(*previous["metrics"]) if previous.get("metrics") else None
    cmd = [sys.executable, "-m", "podns", "dns", "--kubeconfig", str(ctx.dns_kubeconfig),
           "--listen", listen, "--zone", a.dns_zone, "--ttl", str(a.dns_ttl), "--pods", a.dns_pods,
           "--workers", str(a.dns_workers), "--parent-pid", str(os.getpid()), "--report"]
    if metrics:
        cmd += ["--metrics-addr", metrics]
    for up in a.dns_upstream or ():  # none given: the child's default (resolv.conf)
        cmd += ["--upstream", up]
    return cmd


@contextlib.asynccontextmanager
async def _running(dns: DNSProcess) -> AsyncIterator[DNSProcess]:
    try:
        yield dns
    finally:
        await dns.supervised.stop()


async def start_dns(ctx: Any) -> contextlib.AbstractAsyncContextManager[DNSProcess]:
    """`podns up`: the DNS server on --dns-addr in its own supervised process, watching the API
    with its own identity (`<data-dir>/dns.kubeconfig`, user `system:podns-dns`: list/watch of
    what it serves, nothing else)."""
    a = ctx.args
    try:  # bad options end `podns up` here, with podns dns's one-line message
        parse(listen=_hostport(*ctx.dns_addr), zone=a.dns_zone, ttl=a.dns_ttl, pods=a.dns_pods,
              upstreams=upstream_list(a.dns_upstream), metrics_addr=a.dns_metrics_addr, workers=a.dns_workers)
    except ConfigError as exc:
        raise SystemExit(f"podns up: {str(exc).replace('--', '--dns-', 1)}") from None
    dns = DNSProcess(supervised=Supervised("cluster DNS", lambda previous: dns_argv(ctx, previous),
                                           say=lambda text: print(f"podns up: {text}", flush=True)),
                     zone=a.dns_zone.strip(".").lower(), dns_addr=ctx.dns_addr, metrics_addr=None)
    dns.supervised.on_report = dns.update
    try:
        await dns.supervised.start()
    except ChildFailed as exc:
        raise SystemExit(f"podns up: cannot serve DNS on {_hostport(*ctx.dns_addr)}: {exc} "
                         "(its error is above)") from None
    # `podns dig` finds the server of a data dir here
    (ctx.data_dir / "dns-addr").write_text(_hostport(*dns.dns_addr) + "\n")
    return _running(dns)


#: GIL switch interval for the standalone server (seconds; CPython's default is 5 ms): an
#: index update on the event loop then delays the UDP serving thread by at most ~1 ms
SWITCH_INTERVAL = 0.001


async def run(args: argparse.Namespace) -> int:
    if args.parent_pid is not None:
        die_with_parent(args.parent_pid)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        client = Client.from_kubeconfig(args.kubeconfig)
    except KubeConfigError as exc:
        print(f"podns dns: {exc}", file=sys.stderr)
        return 2
    try:
        dns = build(args, client)
    except SystemExit:
        await client.close()
        raise
    try:
        await dns.start()
    except OSError as exc:
        await client.close()
        print(f"podns dns: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return 1
    host, port = dns.dns_addr
    print(f"podns dns: serving {dns.config.zone} on {host}:{port} (udp, tcp)"
          + (f", metrics on {dns.metrics_addr[0]}:{dns.metrics_addr[1]}" if dns.metrics_addr else "")
          + (" as an extra worker" if args.worker else ""), flush=True,
          file=sys.stderr if args.report else sys.stdout)
    if args.report:
        report({"dns": [host, port], "metrics": list(dns.metrics_addr) if dns.metrics_addr else None,
                "zone": dns.config.zone, "pid": os.getpid()})
    children = [spawn_worker(args, host, port) for _ in range(dns.config.workers - 1)]
    try:
        await wait_for_signal()
    finally:
        for child in children:
            child.terminate()
        await dns.close()
        await client.close()
        for child in children:
            await asyncio.get_running_loop().run_in_executor(None, child.wait)
    return 0


def spawn_worker(args: argparse.Namespace, host: str, port: int) -> subprocess.Popen[bytes]:
    """One extra serving process on the same (now fixed) address, without metrics."""
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    cmd = [sys.executable, "-m", "podns", "dns", "--listen", listen,
           "--zone", args.zone, "--ttl", str(args.ttl), "--pods", args.pods, "--worker",
           "--parent-pid", str(os.getpid())]
    if args.kubeconfig:
        cmd += ["--kubeconfig", args.kubeconfig]
    for up in upstream_list(args.upstream) or ["none"]:
        cmd += ["--upstream", up]
    return subprocess.Popen(cmd)
