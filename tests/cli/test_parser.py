"""The `podns` parser loads only the sub-command it runs: a `podns dns` process (one per DNS
worker under `podns up`) must not carry the API server, controllers and node agent in its
memory (issue 16: the DNS process's RSS within CoreDNS's formula)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from podns.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import sys
from podns.cli import build_parser
args = build_parser("dns").parse_args(["dns", "--listen", "127.0.0.1:0"])
assert args.command == "dns", args
heavy = sorted(m for m in sys.modules if m.startswith(("podns.api", "podns.node", "podns.controllers")))
print(" ".join(heavy))
"""


def test_dns_parser_imports_no_other_component() -> None:
    """given `podns dns`, no module of the API server, node agent or controllers is imported."""
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "", f"podns dns imported {out.stdout.strip()}"


def test_full_parser_still_knows_every_command() -> None:
    """given no (or an unknown) sub-command, the parser offers every one of them."""
    for command in (None, "no-such-command"):
        parser = build_parser(command)
        sub = next(a for a in parser._actions if a.dest == "command")
        assert set(sub.choices) == set(COMMANDS)


def test_unknown_command_exits_2_naming_the_choices() -> None:
    """given an unknown sub-command, one line naming the valid ones, exit code 2."""
    out = subprocess.run([sys.executable, "-m", "podns", "bogus"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert "invalid choice: 'bogus'" in out.stderr and "'dns'" in out.stderr
