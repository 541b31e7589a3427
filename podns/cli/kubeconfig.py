"""`podns kubeconfig`: write a component's kubeconfig (its own identity) from an API server's
data dir.

`podns kubeconfig node NAME --data-dir DIR` writes `DIR/node-NAME.kubeconfig` (or `--output`):
user `system:node:NAME` in group `system:nodes`, a client certificate signed by the cluster CA in
DIR, the API servers of `DIR/kubeconfig`. Copy it to the machine joining the cluster and start
`podns node --kubeconfig node-NAME.kubeconfig --name NAME` there. `controller-manager` and `dns`
(re)write the controller manager's and the cluster DNS's kubeconfigs the same way (an API server
writes both at every start). The file holds a private key: it is written 0600.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from podns.api.server import kubeconfig
from podns.kube.config import load_kubeconfig
from podns.kube.errors import ConfigError

WHO = ("node", "controller-manager", "dns")


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(name, help="write a component's kubeconfig (its own identity)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("component", choices=WHO, help="whose identity")
    parser.add_argument("name", nargs="?", default=None, help="node: the Node's name")
    parser.add_argument("--data-dir", default="./state", type=Path,
                        help="data dir of an API server of the cluster: its CA signs the "
                             "certificate, its kubeconfig names the servers (default ./state)")
    parser.add_argument("--output", "-o", default=None, type=Path,
                        help="where to write it (default: in the data dir, node-NAME.kubeconfig, "
                             "controller-manager.kubeconfig or dns.kubeconfig)")
    parser.add_argument("--server", default=None, metavar="URL",
                        help="API server URL to put in it (default: those of DATA_DIR/kubeconfig)")
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir
    if args.component == "node" and not args.name:
        args._parser.error("node needs the Node's NAME")
    if args.component != "node" and args.name:
        args._parser.error(f"{args.component} takes no NAME")
    missing = [n for n in ("ca.crt", "ca.key") if not (data_dir / n).is_file()]
    if missing:
        print(f"podns kubeconfig: {data_dir} has no {' and '.join(missing)}: pass --data-dir with "
              "the data dir of an API server of the cluster", file=sys.stderr)
        return 2
    if args.server:
        servers = [args.server]
    else:
        try:
            servers = load_kubeconfig(data_dir / "kubeconfig").servers
        except ConfigError as exc:
            print(f"podns kubeconfig: {exc}: start the API server once, or pass --server",
                  file=sys.stderr)
            return 2
    if args.component == "node":
        out = args.output or data_dir / kubeconfig.node_kubeconfig_name(args.name)
        kubeconfig.write_node_kubeconfig(out, data_dir, args.name, server=servers[0], servers=servers)
        who = f"system:node:{args.name}"
    else:
        file = (kubeconfig.CONTROLLER_MANAGER_KUBECONFIG if args.component == "controller-manager"
                else kubeconfig.DNS_KUBECONFIG)
        who, groups = kubeconfig.COMPONENTS[file]
        out = args.output or data_dir / file
        kubeconfig.write_client_kubeconfig(out, data_dir, user=who, groups=groups,
                                           server=servers[0], servers=servers)
    print(f"podns kubeconfig: wrote {out} (user {who}, server {servers[0]})")
    return 0
