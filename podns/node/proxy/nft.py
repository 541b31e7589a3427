"""Running Debian's `nft`: apply one script as one transaction, read a table's names, delete it.

Only this module runs the binary (through `tools.run`: a child process with a timeout, run
without blocking the event loop).

Errors (one root, as the house style asks):

    NftError            nft ran and refused (the message is its stderr: the line it rejected),
     +-- NftMissing     or it is not installed / could not be run at all.

(subclasses of `tools.RulesError` / `tools.RulesToolMissing`, which the iptables backend shares)

A refused script changes nothing: `nft -f` checks and commits the whole file as one netlink
batch, so the table stays as it was (`tests/node/test_proxy_nft.py` proves it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from podns.node.proxy import tools
from podns.node.proxy.nftables import FAMILIES, TableState
from podns.node.proxy.tools import RulesError, RulesToolMissing, find_tool


class NftError(RulesError):
    """nft refused a script or a command; the message says which and why."""


class NftMissing(NftError, RulesToolMissing):
    """The `nft` binary is not installed or cannot be run."""


def nft_path() -> str | None:
    """Where `nft` is (`tools.find_tool`: PATH, then /usr/sbin, where Debian puts it)."""
    return find_tool("nft")


async def run(*args: str, stdin: str | None = None, binary: Sequence[str] | None = None) -> str:
    """`nft args...` (with `stdin`); its stdout. `binary`: the command that runs nft (None: the
    installed one; tests run it in a namespace of their own with `ip netns exec NS nft`).
    Raises NftMissing, or NftError on a non-zero exit."""
    found = nft_path()
    command = list(binary) if binary else [found] if found else None
    if command is None:
        raise NftMissing("nft is not installed (Debian package nftables); ClusterIPs in netns "
                         "mode need it")
    return await tools.run(command, *args, stdin=stdin, errors=(NftError, NftMissing))


async def apply(script: str, *, binary: Sequence[str] | None = None) -> None:
    """Apply `script` as one transaction (`nft -f -`): all of it or, on NftError, none of it."""
    await run("-f", "-", stdin=script, binary=binary)


async def table_state(table: str, family: int = 4, *,
                      binary: Sequence[str] | None = None) -> TableState | None:
    """The chains and sets of `table` now; None when there is no such table."""
    try:
        out = await run("-j", "list", "table", FAMILIES[family].table, table, binary=binary)
    except NftMissing:
        raise
    except NftError as exc:  # nft says so in its own words; anything else is a real failure
        if "No such file or directory" in str(exc):
            return None
        raise
    try:
        items = json.loads(out).get("nftables") or []
    except ValueError as exc:
        raise NftError(f"nft -j list table {table}: unreadable output: {exc}") from exc
    chains = {str(i["chain"]["name"]) for i in items if "chain" in i}
    sets = {str(i[k]["name"]) for i in items for k in ("set", "map") if k in i}
    return TableState(chains=frozenset(chains), sets=frozenset(sets))


async def delete_table(table: str, family: int = 4, *, binary: Sequence[str] | None = None) -> bool:
    """Remove `table` if it exists; True when there was one."""
    if await table_state(table, family, binary=binary) is None:
        return False
    await run("delete", "table", FAMILIES[family].table, table, binary=binary)
    return True
