"""`podns node`: a node agent joining a cluster (and the node component of `podns up`).

The node endpoint (logs, exec, attach, port-forward) is served over TLS with a certificate from
the cluster CA and answers only the API server (see `podns.node.server`): `podns up` signs its
node's certificate with its own CA; `podns node` signs one with the CA of `--pki-from DIR` (an API
server's data dir; by default the kubeconfig's directory when it holds `ca.key`), or takes
`--tls-cert-file`/`--tls-private-key-file`/`--client-ca-file` made elsewhere.

Its identity towards the API is the kubeconfig's: on the control-plane machine, `podns kubeconfig
node NAME --data-dir DIR` writes one for user `system:node:NAME` in group `system:nodes` (a client
certificate from the cluster CA), which the Node authorizer limits to the node's own Node, Lease
and pods, and to the Secrets/ConfigMaps/PVCs those pods use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from podns.api.server import certs
from podns.api.server.apiserver import DEFAULT_SERVICE_CIDR, parse_addr
from podns.api.server.kubeconfig import node_kubeconfig_name, write_node_kubeconfig
from podns.cli import flags
from podns.cli.apiserver import host_port
from podns.cli.signals import StopSignals
from podns.kube import errors
from podns.kube.client import Client
from podns.node import netns
from podns.node.agent import Agent
from podns.node.ipam import LockDirError
from podns.node.proxy.kernel import PROXY_MODES
from podns.node.routes import BACKENDS as ROUTE_BACKENDS
from podns.node.runtime.podman import PULL_TIMEOUT
from podns.node.runtime.select import CHOICES as RUNTIME_CHOICES
from podns.node.server import serving_ssl_context
from podns.node.servicecidr import NETNS_SERVICE_CIDR
from podns.objects import cidrs


def _hostname() -> str:
    name = re.sub(r"[^a-z0-9.-]", "-", socket.gethostname().lower()).strip("-.")
    return name or "node-1"


def _node_flags(parser: argparse.ArgumentParser, *, up: bool = False) -> None:
    parser.add_argument("--pod-network", choices=("auto", "loopback", "netns"), default="auto",
                        help="auto (default): netns when running as root and network namespaces "
                             "work, else loopback; loopback (no root): each pod gets its own "
                             "127.x address; netns (root): each pod in its own network namespace "
                             "on a bridge, with a 10.244.x address, the cluster DNS in its "
                             "resolv.conf and its volumes at their mountPath")
    parser.add_argument("--pod-network-backend", choices=ROUTE_BACKENDS, default="auto",
                        help="netns mode: how pods reach the pods of other nodes: host-gw (a route "
                             "via the other node's InternalIP; nodes on one link), vxlan (the "
                             "kernel's VXLAN encapsulation, UDP 8472; nodes anywhere) or auto "
                             "(default: host-gw to nodes on a shared link, vxlan to the others)")
    parser.add_argument("--container-runtime", choices=RUNTIME_CHOICES, default="auto",
                        help="what runs the containers: process (local processes, the command of "
                             "the spec), podman (OCI images through podman; needs --pod-network "
                             "netns) or auto (default: podman when the pod network is netns and "
                             "podman works here, else process)")
    parser.add_argument("--oci-runtime", default=None,
                        help="podman runtime: the OCI runtime podman uses (default: podman's own "
                             "if it works here, else runc)")
    parser.add_argument("--image-pull-timeout", type=float, default=PULL_TIMEOUT, metavar="SECONDS",
                        help=f"podman runtime: a pull taking longer fails with ErrImagePull "
                             f"(default {PULL_TIMEOUT:g})")
    parser.add_argument("--pod-cidr", default=None, type=flags.pod_cidr,
                        help="pod address range (default: the first free 127.<n>.0.0/16; with "
                             "--pod-network netns the first free 10.244.<n>.0/24)")
    if not up:  # podns up passes its own --dns-addr and --dns-zone
        parser.add_argument("--cluster-dns", default="127.0.0.1:1053", type=host_port,
                            help="netns mode: the cluster DNS the node's relay forwards pods' "
                                 "queries to (default 127.0.0.1:1053)")
        parser.add_argument("--cluster-domain", default="cluster.local",
                            help="netns mode: the cluster domain of the pods' DNS search path "
                                 "(default cluster.local)")
        parser.add_argument("--service-cidr", default=None, type=flags.service_cidr,
                            help="the cluster's ClusterIP range, as given to the API server "
                                 "(default: learned from the cluster, Service default/kubernetes); "
                                 "in netns mode a range off loopback is served by kernel NAT "
                                 "(nftables) for pods and host")
    parser.add_argument("--node-ip", default="127.0.0.1", type=flags.node_ips,
                        help="this node's address (its InternalIP): its log endpoint listens here "
                             "(default 127.0.0.1); dual-stack: an IPv4 and an IPv6 address, "
                             "comma-separated (netns mode routes IPv6 pods host-gw between them)")
    parser.add_argument("--node-port", type=flags.port, default=0,
                        help="port of the node's log endpoint (default: any free port)")
    parser.add_argument("--no-service-proxy", action="store_true",
                        help="do not run the ClusterIP proxy on this node")
    parser.add_argument("--proxy-mode", choices=PROXY_MODES, default="auto",
                        help="netns mode: how ClusterIPs off loopback are served: nftables (kernel "
                             "NAT in the node's own nft table), iptables (kernel NAT in the node's "
                             "own iptables chains, through iptables-restore), userspace (the "
                             "asyncio proxy: loopback service ranges, the host only) or auto "
                             "(default: nftables when nft works, else iptables; an Event "
                             "NftMissing when neither is installed)")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="run a node agent (pods as local processes)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path,
                        help="kubeconfig of the cluster with this node's identity (user "
                             "system:node:NAME: `podns kubeconfig node NAME` writes one)")
    parser.add_argument("--name", default=_hostname(), help="Node name (default: the host name)")
    parser.add_argument("--data-dir", default=None, type=Path,
                        help="pod state, logs, volumes (default ./state/node-<name>)")
    parser.add_argument("--pki-from", default=None, type=Path, metavar="DIR",
                        help="data dir of an API server of this cluster: sign this node's serving "
                             "certificate with its CA (default: the kubeconfig's directory when it "
                             "holds ca.crt and ca.key); the CA key is read, not copied")
    parser.add_argument("--tls-cert-file", default=None, type=Path,
                        help="serving certificate of the node endpoint, signed by the cluster CA "
                             "(instead of --pki-from)")
    parser.add_argument("--tls-private-key-file", default=None, type=Path,
                        help="key of --tls-cert-file")
    parser.add_argument("--client-ca-file", default=None, type=Path,
                        help="CA the API server's client certificate must chain to (default: the "
                             "--pki-from CA)")
    _node_flags(parser)
    parser.set_defaults(run=run)


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    """The node agent's flags on `podns up`."""
    _node_flags(parser, up=True)


def _check(args: argparse.Namespace, command: str) -> None:
    """Resolve `--pod-network auto` (into `args.pod_network`, the reason into
    `args.pod_network_why`); exit with one line when namespace mode cannot run here (not root,
    no `ip netns`, a bad --pod-cidr) or when an IPv6 range is asked of loopback mode."""
    nets = cidrs.parse_cidrs(args.pod_cidr) if args.pod_cidr else []
    primary = str(nets[0]) if nets else None
    args.pod_network, args.pod_network_why = netns.choose_mode(args.pod_network, primary)
    if args.pod_network != "netns" and getattr(args, "proxy_mode", "auto") in ("nftables", "iptables"):
        args._parser.error(f"argument --proxy-mode: {args.proxy_mode} is kernel NAT for pods in "
                           "their own network namespaces: it needs --pod-network netns (loopback "
                           "mode serves ClusterIPs with the userspace proxy)")
    if args.pod_network != "netns":
        for net in nets:
            if net.version == 6:
                args._parser.error(f"argument --pod-cidr: {net} is IPv6: loopback mode gives pods 127.x "
                                   "addresses (IPv6 has one loopback address, ::1, not a range); "
                                   "dual-stack needs --pod-network netns")
            if not net.is_loopback:
                args._parser.error(f"argument --pod-cidr: {net} is not inside 127.0.0.0/8, "
                                   "where loopback mode gives pods their addresses")
        for net in _cluster_cidrs(args, command):
            if net.version == 6:
                args._parser.error(f"argument --cluster-cidr: {net} is IPv6 but loopback mode is "
                                   "single-stack IPv4 (pods get 127.x addresses; IPv6 has one loopback "
                                   "address, ::1, not a range): dual-stack needs --pod-network netns")
        service = getattr(args, "service_cidr", None) if command == "up" else None
        for net in cidrs.parse_cidrs(service) if service else []:
            if net.version == 6:
                args._parser.error(f"argument --service-cidr: {net} is IPv6: in loopback mode ClusterIPs "
                                   "are served on 127.x addresses (IPv6 has no loopback range); "
                                   "dual-stack needs --pod-network netns")
        return
    why = netns.unavailable_reason()
    for net in nets:
        why = why or netns.check_cidr(str(net))
    if why is None and nets and all(n.version == 6 for n in nets):
        why = (f"--pod-cidr {args.pod_cidr}: namespace mode needs an IPv4 pod CIDR too (the pods' "
               "gateway and DNS relay are IPv4): e.g. --pod-cidr 10.244.1.0/24," + str(nets[0]))
    cluster = _cluster_cidrs(args, command)
    if why is None and cluster and all(n.version == 6 for n in cluster):
        args._parser.error(f"argument --cluster-cidr: {cluster[0]} is IPv6 only: namespace mode needs an "
                           "IPv4 pod range too (the pods' gateway and DNS relay are IPv4): e.g. "
                           f"--cluster-cidr 10.244.0.0/16,{cluster[0]}")
    if why is not None:
        raise SystemExit(f"podns {command}: {why}")


def _cluster_cidrs(args: argparse.Namespace, command: str) -> list[cidrs.Network]:
    """`podns up --cluster-cidr` as given ([] when not given, not `up`, or malformed: the
    controller manager's own check says that)."""
    given = getattr(args, "cluster_cidr", None) if command == "up" else None
    try:
        return cidrs.parse_cidrs(str(given)) if given else []
    except ValueError:
        return []


def _dual_stack_services(args: argparse.Namespace) -> bool:
    """An IPv6 service CIDR (`podns up`'s, or `podns node --service-cidr`): netns pods get an
    IPv6 address too, even without an IPv6 --pod-cidr."""
    service = getattr(args, "service_cidr", None)
    return bool(service) and any(n.version == 6 for n in cidrs.parse_cidrs(str(service)))


def node_ips(args: argparse.Namespace) -> tuple[str, str | None]:
    """`--node-ip` as (the address the node endpoint listens on and the VXLAN tunnel starts from:
    the IPv4 one if given, else the only one; the IPv6 one beside it, dual-stack, else None)."""
    ips = str(args.node_ip).split(",")
    v4 = [a for a in ips if ":" not in a]
    v6 = [a for a in ips if ":" in a]
    return (v4 or v6)[0], (v6[0] if v4 and v6 else None)


def check_up_arguments(args: argparse.Namespace) -> None:
    """`podns up` hook, before anything starts: the pod network flags (see `_check`), then the
    service CIDR's default, which depends on the pod network (`default_service_cidr`)."""
    _check(args, "up")
    args.service_cidr = args.service_cidr or default_service_cidr(
        args.pod_network, getattr(args, "proxy_mode", "auto"))


def default_service_cidr(pod_network: str, proxy_mode: str = "auto") -> str:
    """`podns up`'s --service-cidr when none is given: in namespace mode with kernel NAT a range
    off loopback (`NETNS_SERVICE_CIDR`), which the node NATs for pods and host (a loopback one
    would be each pod's own lo); in loopback mode, or with `--proxy-mode userspace`,
    `DEFAULT_SERVICE_CIDR`, whose addresses the userspace proxy can listen on."""
    kernel_nat = pod_network == "netns" and proxy_mode != "userspace"
    return NETNS_SERVICE_CIDR if kernel_nat else DEFAULT_SERVICE_CIDR


def node_tls(args: argparse.Namespace, *, name: str, data_dir: Path, kubeconfig: Path,
             ca_dir: Path | None = None) -> ssl.SSLContext:
    """The node endpoint's TLS settings: `--tls-cert-file`/`--tls-private-key-file`, or a serving
    certificate signed by the CA of `ca_dir` (`--pki-from`, else the kubeconfig's directory when
    it holds the CA); exits with one line when neither is there."""
    ca_dir = ca_dir or getattr(args, "pki_from", None)
    if ca_dir is None and (kubeconfig.parent / "ca.key").is_file():
        ca_dir = kubeconfig.parent
    cert_file = getattr(args, "tls_cert_file", None)
    key_file = getattr(args, "tls_private_key_file", None)
    client_ca = getattr(args, "client_ca_file", None) or (ca_dir / "ca.crt" if ca_dir else None)
    if cert_file is not None or key_file is not None:
        if cert_file is None or key_file is None:
            raise SystemExit("podns node: --tls-cert-file and --tls-private-key-file go together")
    elif ca_dir is not None:
        missing = [n for n in ("ca.crt", "ca.key") if not (ca_dir / n).is_file()]
        if missing:
            raise SystemExit(f"podns node: --pki-from {ca_dir}: missing {', '.join(missing)}")
        cert_file, key_file = certs.issue_node_serving(ca_dir, data_dir, node_name=name,
                                                       host=node_ips(args)[0])
    else:
        raise SystemExit("podns node: the node endpoint needs a certificate from the cluster CA: "
                         "pass --pki-from <an API server's data dir>, or --tls-cert-file, "
                         "--tls-private-key-file and --client-ca-file")
    if client_ca is None:
        raise SystemExit("podns node: --client-ca-file is required with --tls-cert-file")
    try:
        return serving_ssl_context(cert_file, key_file, client_ca)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"podns node: loading the node endpoint's certificate: {exc}") from None


@contextlib.asynccontextmanager
async def _running(kubeconfig: Path, *, name: str, data_dir: Path, args: argparse.Namespace,
                   cluster_dns: tuple[str, int], cluster_domain: str,
                   ca_dir: Path | None = None) -> AsyncIterator[Agent]:
    tls = node_tls(args, name=name, data_dir=data_dir, kubeconfig=kubeconfig, ca_dir=ca_dir)
    client = Client.from_kubeconfig(kubeconfig)
    host_ip, host_ip6 = node_ips(args)
    agent = Agent(client, name=name, data_dir=data_dir, host_ip=host_ip, host_ip6=host_ip6,
                  port=args.node_port, pod_cidr=args.pod_cidr, proxy=not args.no_service_proxy,
                  pod_network=args.pod_network, pod_network_backend=args.pod_network_backend,
                  cluster_dns=cluster_dns, cluster_domain=cluster_domain,
                  serving_tls=tls, container_runtime=args.container_runtime, oci_runtime=args.oci_runtime,
                  image_pull_timeout=args.image_pull_timeout, dual_stack=_dual_stack_services(args),
                  service_cidr=args.service_cidr, proxy_mode=args.proxy_mode)
    try:
        try:
            await agent.start()
        except (netns.NetnsError, LockDirError) as exc:
            raise SystemExit(f"podns node: pod network: {exc}") from None
        yield agent
    finally:
        await agent.stop()
        await client.close()


async def start_node(ctx: Any) -> AbstractAsyncContextManager[Agent]:
    """`podns up` hook: the node named after the host, state in `<data-dir>/node`, with its own
    identity (`<data-dir>/node-<name>.kubeconfig`: user `system:node:<name>`, which the Node
    authorizer limits to its own pods' objects); in netns mode its DNS relay forwards to
    `podns up`'s own cluster DNS (--dns-addr, --dns-zone)."""
    if not getattr(ctx.args, "pod_network_why", None):  # check_up_arguments has not run
        _check(ctx.args, "up")
    kubeconfig = write_node_kubeconfig(ctx.data_dir / node_kubeconfig_name(ctx.node_name), ctx.data_dir,
                                       ctx.node_name, server=ctx.api_url)
    return _running(kubeconfig, name=ctx.node_name, data_dir=ctx.data_dir / "node", args=ctx.args,
                    cluster_dns=ctx.dns_addr, cluster_domain=getattr(ctx.args, "dns_zone", "cluster.local"),
                    ca_dir=ctx.data_dir)


async def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _check(args, "node")
    data_dir = (args.data_dir or Path("state") / f"node-{args.name}").absolute()
    with StopSignals() as signals:  # a signal while the agent starts unwinds what it set up
        try:
            async with _running(args.kubeconfig, name=args.name, data_dir=data_dir, args=args,
                                cluster_dns=parse_addr(args.cluster_dns),
                                cluster_domain=args.cluster_domain) as agent:
                print(f"podns node: {args.name} running (pods {agent.pod_cidr}, pod network "
                      f"{args.pod_network}: {args.pod_network_why}; container runtime "
                      f"{agent.runtime_reason}; endpoint https://{agent.host_ip}:{agent.port})",
                      flush=True)
                await signals.serve()
        except errors.KubeError as exc:
            print(f"podns node: {exc}", file=sys.stderr)
            return 1
        except asyncio.CancelledError:
            if not signals.stopped_while_starting():
                raise
            print("podns node: stopped while starting (signal)", file=sys.stderr, flush=True)
            return 0
    print("podns node: stopped", file=sys.stderr, flush=True)
    return 0
