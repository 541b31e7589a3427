"""The `podns` command: wiring of components only, no logic.

One module per sub-command (`up`, `apiserver`, `controller_manager`, `node`, `dns`, `dig`); each
exposes `add_parser(subparsers)` and an `async def run(args) -> int`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

#: sub-command name -> module under podns.cli implementing it
COMMANDS: dict[str, str] = {
    "up": "up",
    "apiserver": "apiserver",
    "controller-manager": "controller_manager",
    "node": "node",
    "dns": "dns",
    "dig": "dig",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="podns", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(f"podns.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"podns.cli.{module}":
                raise
            continue
        mod.add_parser(sub, name)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(args.run(args)) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
