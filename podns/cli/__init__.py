"""The `podns` command: wiring of components only, no logic.

One module per sub-command (`up`, `apiserver`, `controller_manager`, `node`, `dns`, `dig`,
`kubeconfig`); each
exposes `add_parser(subparsers)` and an `async def run(args) -> int`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from typing import NoReturn

#: sub-command name -> module under podns.cli implementing it
COMMANDS: dict[str, str] = {
    "up": "up",
    "apiserver": "apiserver",
    "controller-manager": "controller_manager",
    "node": "node",
    "dns": "dns",
    "dig": "dig",
    "kubeconfig": "kubeconfig",
}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: what is wrong and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see '{self.prog} --help')\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `podns` parser; with `command` (a known sub-command) only that sub-command's.

    Each sub-command module imports what it runs: building every sub-parser loads the API
    server, controllers and node agent too (~0.45 s of CPU and ~22 MB of RSS that a `podns dns`
    process, started once per DNS worker, would carry for nothing)."""
    parser = _Parser(prog="podns", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = {command: COMMANDS[command]} if command in COMMANDS else COMMANDS
    for name, module in chosen.items():
        mod = importlib.import_module(f"podns.cli.{module}")
        mod.add_parser(sub, name)
        # unknown flags are reported by the command's own parser
        sub.choices[name].set_defaults(_parser=sub.choices[name])
    return parser


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C at any point, even while the command's modules are still being imported, ends the
    # command quietly with the shell's interrupted status
    try:
        args_list = sys.argv[1:] if argv is None else argv
        parser = build_parser(args_list[0] if args_list else None)
        args, unknown = parser.parse_known_args(argv)
        if unknown:
            getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
        return asyncio.run(args.run(args)) or 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
