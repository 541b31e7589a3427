"""`podns controller-manager`: the controllers alone, against any API server's kubeconfig.

Wiring only: parse flags, build a `Client` and a `ControllerManager`, run it until SIGINT or
SIGTERM. The kubeconfig should be the controller manager's own
(`<data-dir>/controller-manager.kubeconfig`, user `system:kube-controller-manager`), not the
admin's. Also the `podns up` hook (`start_controllers`, `add_up_arguments`): there the
controllers run without leader election, since one process owns the whole cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from podns.cli.signals import wait_for_signal
from podns.controllers.endpointslice.reconciler import DEFAULT_MAX_ENDPOINTS_PER_SLICE
from podns.controllers.manager import ALL_CONTROLLERS, ControllerManager, Options, validate
from podns.controllers.nodeipam import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_CLUSTER_CIDR_DUAL,
    DEFAULT_MASK_V4,
    DEFAULT_MASK_V6,
)
from podns.controllers.nodelifecycle import DEFAULT_GRACE_PERIOD
from podns.kube.client import Client

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def duration(text: str) -> float:
    """A Go-style duration ("40s", "1m30s", "500ms", or plain seconds) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|)", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (examples: 40s, 1m30s, 500ms)")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def endpoints_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, got {text!r}")
    return value


def controller_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["*"]:
        return list(ALL_CONTROLLERS)
    unknown = [n for n in names if n not in ALL_CONTROLLERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown controllers {unknown} (known: *, {', '.join(ALL_CONTROLLERS)})")
    return names


def _add_tuning(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node-grace-period", type=duration, default=DEFAULT_GRACE_PERIOD,
                        metavar="DURATION",
                        help="a node whose Lease is not renewed for this long becomes NotReady "
                             "(default 40s)")
    parser.add_argument("--max-endpoints-per-slice", type=endpoints_limit,
                        default=DEFAULT_MAX_ENDPOINTS_PER_SLICE, metavar="N",
                        help="endpoints per EndpointSlice, 1-1000 (default 100)")
    parser.add_argument("--cluster-cidr", default=None, metavar="CIDR[,CIDR]",
                        help="node IPAM: the range Nodes' pod CIDRs are cut from, one or two "
                             f"(IPv4, IPv6) comma-separated (default {DEFAULT_CLUSTER_CIDR}; "
                             f"{DEFAULT_CLUSTER_CIDR_DUAL} for `podns up` with an IPv6 --service-cidr); "
                             "a Node without spec.podCIDR gets the first free block")
    parser.add_argument("--node-cidr-mask-size", type=int, default=DEFAULT_MASK_V4, metavar="N",
                        help=f"node IPAM: prefix length of each Node's IPv4 block "
                             f"(default {DEFAULT_MASK_V4})")
    parser.add_argument("--node-cidr-mask-size-ipv6", type=int, default=DEFAULT_MASK_V6, metavar="N",
                        help=f"node IPAM: prefix length of each Node's IPv6 block "
                             f"(default {DEFAULT_MASK_V6})")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run the controllers (EndpointSlice, StatefulSet, ...)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=None, metavar="FILE",
                        help="API server kubeconfig (default: in a pod, its ServiceAccount; else "
                             "$KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--leader-elect", action=argparse.BooleanOptionalAction, default=True,
                        help="act only while holding the Lease kube-system/kube-controller-manager "
                             "(default: on)")
    parser.add_argument("--controllers", type=controller_list, default=list(ALL_CONTROLLERS),
                        metavar="LIST", help=f"comma-separated, or * (default): {','.join(ALL_CONTROLLERS)}")
    parser.add_argument("--leader-elect-lease-duration", type=duration, default=15.0, metavar="DURATION",
                        help="how long followers wait before taking over an unrenewed Lease (default 15s)")
    parser.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0, metavar="DURATION",
                        help="how long the leader retries renewing before it stops leading (default 10s)")
    parser.add_argument("--leader-elect-retry-period", type=duration, default=2.0, metavar="DURATION",
                        help="time between Lease attempts (default 2s)")
    _add_tuning(parser)
    parser.set_defaults(run=run)


def cluster_cidr(args: argparse.Namespace) -> str:
    """`--cluster-cidr`, else its default: dual-stack when the cluster's service CIDR (`podns
    up`'s --service-cidr) has an IPv6 range, so every Node gets an IPv6 block too."""
    given = getattr(args, "cluster_cidr", None)
    if given:
        return str(given)
    service = str(getattr(args, "service_cidr", None) or "")
    return DEFAULT_CLUSTER_CIDR_DUAL if ":" in service else DEFAULT_CLUSTER_CIDR


def options_from(args: argparse.Namespace, *, leader_elect: bool) -> Options:
    return Options(
        controllers=getattr(args, "controllers", None) or list(ALL_CONTROLLERS),
        node_grace_period=args.node_grace_period,
        max_endpoints_per_slice=args.max_endpoints_per_slice,
        cluster_cidr=cluster_cidr(args),
        node_cidr_mask_size=getattr(args, "node_cidr_mask_size", DEFAULT_MASK_V4),
        node_cidr_mask_size_ipv6=getattr(args, "node_cidr_mask_size_ipv6", DEFAULT_MASK_V6),
        leader_elect=leader_elect,
        lease_duration=getattr(args, "leader_elect_lease_duration", 15.0),
        renew_deadline=getattr(args, "leader_elect_renew_deadline", 10.0),
        retry_period=getattr(args, "leader_elect_retry_period", 2.0),
    )


async def run(args: argparse.Namespace) -> int:
    try:
        client = Client.from_kubeconfig(args.kubeconfig)
    except Exception as exc:
        print(f"podns controller-manager: cannot load kubeconfig {args.kubeconfig or '(default)'}: {exc}",
              file=sys.stderr)
        return 2
    try:
        manager = ControllerManager(client, options_from(args, leader_elect=args.leader_elect))
        if args.leader_elect:
            manager.elector()  # validates the Lease timings before anything runs
    except ValueError as exc:
        await client.close()
        print(f"podns controller-manager: {exc}", file=sys.stderr)
        return 2
    task = asyncio.create_task(manager.run(), name="controller-manager")
    print(f"podns controller-manager: running against {client.server}"
          f" (leader election {'on' if args.leader_elect else 'off'})", flush=True)
    stopper = asyncio.create_task(wait_for_signal(), name="controller-manager-signals")
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopper):
            t.cancel()
        await asyncio.gather(task, stopper, return_exceptions=True)
        await client.close()
    if task.done() and not task.cancelled() and task.exception() is not None:
        print(f"podns controller-manager: {task.exception()}", file=sys.stderr)
        return 1
    print("podns controller-manager: stopped", file=sys.stderr, flush=True)
    return 0


# -- `podns up` ---------------------------------------------------------------------------------


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    """The controller flags `podns up` accepts."""
    _add_tuning(parser)


async def start_controllers(ctx: Any) -> AbstractAsyncContextManager[ControllerManager]:
    """Run the controllers inside `podns up` (no leader election) while the context is entered."""

    options = options_from(ctx.args, leader_elect=False)
    try:
        validate(options)
    except ValueError as exc:
        raise SystemExit(f"podns up: {exc}") from None

    @contextlib.asynccontextmanager
    async def running() -> AsyncIterator[ControllerManager]:
        client = Client.from_kubeconfig(str(ctx.controller_manager_kubeconfig))
        manager = ControllerManager(client, options)
        task = asyncio.create_task(manager.run(), name="controller-manager")
        try:
            yield manager
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()

    return running()
