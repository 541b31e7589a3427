"""`podns dig NAME [TYPE]`: resolve a name as a pod would, and say why when it does not resolve."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import dns.exception

from podns.clusterdns.config import ConfigError, parse_addr
from podns.clusterdns.diagnose import explain, format_answer, lookup
from podns.kube import errors
from podns.kube.client import Client

#: where `podns up` records the address its DNS server listens on
DNS_ADDR_FILE = "dns-addr"


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="resolve a name as a pod would; explain failures",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("name", help="e.g. db-service, db-0.db-service, db.default.svc.cluster.local.")
    parser.add_argument("type", nargs="?", default="A", help="record type (default A)")
    parser.add_argument("-n", "--namespace", default=None, help="namespace of the asking pod (default: "
                        "the kubeconfig's, else default)")
    parser.add_argument("--server", default=None, help="DNS server host:port (default: the one `podns up` "
                        "runs for --data-dir, else 127.0.0.1:1053)")
    parser.add_argument("--data-dir", default="./state", type=Path, help="podns data dir (default ./state)")
    parser.add_argument("--kubeconfig", default=None, help="for explanations (default $KUBECONFIG, else "
                        "<data-dir>/kubeconfig)")
    parser.add_argument("--zone", default="cluster.local", help="cluster domain (default cluster.local)")
    parser.add_argument("--tcp", action="store_true", help="query over TCP")
    parser.set_defaults(run=run)


def default_server(args: argparse.Namespace) -> str:
    if args.server:
        return str(args.server)
    recorded = Path(args.data_dir) / DNS_ADDR_FILE
    if recorded.exists():
        return recorded.read_text().strip()
    return "127.0.0.1:1053"


def kubeconfig_path(args: argparse.Namespace) -> str | None:
    for candidate in (args.kubeconfig, os.environ.get("KUBECONFIG"), str(Path(args.data_dir) / "kubeconfig")):
        if candidate and Path(candidate.split(os.pathsep)[0]).exists():
            return str(candidate)
    return None


async def run(args: argparse.Namespace) -> int:
    try:
        server = parse_addr(default_server(args), 53, "--server")
    except ConfigError as exc:
        print(f"podns dig: {exc}", file=sys.stderr)
        return 2
    kubeconfig = kubeconfig_path(args)
    try:
        client = Client.from_kubeconfig(kubeconfig) if kubeconfig else None
    except errors.ConfigError as exc:
        print(f"podns dig: {exc} (explanations disabled)", file=sys.stderr)
        client = None
    namespace = args.namespace or (client.namespace if client else None) or "default"
    try:
        result = await lookup(args.name, args.type.upper(), namespace, server, zone=args.zone, tcp=args.tcp)
    except (dns.exception.DNSException, OSError) as exc:
        print(f"podns dig: no answer from {server[0]}:{server[1]}: {exc or type(exc).__name__}",
              file=sys.stderr)
        if client:
            await client.close()
        return 2
    print(f"Server:  {server[0]}:{server[1]}")
    try:
        if result.answer is not None:
            print(f"Name:    {result.name}")
            for line in format_answer(result.answer):
                print(f"  {line}")
            return 0
        print(f"{args.name} ({args.type.upper()}): not found")
        for name, rcode in result.tried:
            print(f"  tried {name:<55} {rcode}")
        if client is None:
            print("  (no kubeconfig: cannot ask the API why)")
            return 1
        try:
            reasons = await explain(client, [n for n, _ in result.tried], args.zone)
        except errors.KubeError as exc:
            reasons = [f"could not ask the API: {exc}"]
        print("Why:")
        for line in reasons:
            print(f"  {line}")
        return 1
    finally:
        if client:
            await client.close()
