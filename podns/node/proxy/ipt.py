"""Running Debian's `iptables-restore`/`iptables-save` (and the ip6 twins): apply one prefix's
chains, read what a prefix holds, delete it.

Only this module runs these tools (through `tools.run`, or synchronously for the crash clean-up
in `netns.cleanup_leftovers`). Either variant works (iptables-nft, Debian's default, or
iptables-legacy): both read the same restore format and commit each table's block at once.
`--noflush` keeps everything that is not the prefix's (the machine's own rules, Docker's, other
podns nodes'); `-w` waits for the legacy variant's lock instead of failing.

Errors (subclasses of the shared `tools.RulesError` / `tools.RulesToolMissing`):

    IptablesError           a tool ran and refused (its stderr names the line)
     +-- IptablesMissing    or it is not installed / could not be run at all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from podns.node.proxy import tools
from podns.node.proxy.iptables import Saved, delete_script, parse_save
from podns.node.proxy.tools import RulesError, RulesToolMissing, find_tool

#: the tools of each address family
RESTORE = {4: "iptables-restore", 6: "ip6tables-restore"}
SAVE = {4: "iptables-save", 6: "ip6tables-save"}


class IptablesError(RulesError):
    """iptables-restore or iptables-save refused; the message says which and why."""


class IptablesMissing(IptablesError, RulesToolMissing):
    """The iptables tools are not installed or cannot be run."""


def iptables_path(family: int = 4) -> str | None:
    """Where `iptables-restore` (`ip6tables-restore` for 6) is; None when not installed (or when
    its `-save` twin is not)."""
    restore = find_tool(RESTORE[family])
    return restore if restore is not None and find_tool(SAVE[family]) is not None else None


def _command(tool: str, wrapper: Sequence[str]) -> list[str]:
    found = find_tool(tool)
    if found is None:
        raise IptablesMissing(f"{tool} is not installed (Debian package iptables); ClusterIPs in "
                              "netns mode need it or nft")
    return [*wrapper, found]


async def apply(script: str, family: int = 4, *, wrapper: Sequence[str] = ()) -> None:
    """`iptables-restore --noflush` of `script` (each table's block at once, or not at all).
    `wrapper`: a command prefix (tests: `ip netns exec NS`)."""
    await tools.run(_command(RESTORE[family], wrapper), "-w", "--noflush", stdin=script,
                    errors=(IptablesError, IptablesMissing))


async def saved(prefix: str, family: int = 4, *, wrapper: Sequence[str] = ()) -> dict[str, Saved]:
    """What the nat and filter tables hold of `prefix` now (`iptables.parse_save`)."""
    out = ""
    for table in ("nat", "filter"):
        out += await tools.run(_command(SAVE[family], wrapper), "-t", table,
                               errors=(IptablesError, IptablesMissing))
    return parse_save(out, prefix)


async def delete(prefix: str, family: int = 4, *, wrapper: Sequence[str] = ()) -> bool:
    """Remove every chain of `prefix` and the jumps to them; True when there was something."""
    script = delete_script(await saved(prefix, family, wrapper=wrapper))
    if script:
        await apply(script, family, wrapper=wrapper)
    return bool(script)


def delete_now(prefix: str, timeout: float, *, wrapper: Sequence[str] = ()) -> None:
    """`delete` for both families, synchronously and quietly: the clean-up of what a crashed
    agent left (nothing happens when the tools are missing or refuse)."""
    for family in (4, 6):
        restore, save = find_tool(RESTORE[family]), find_tool(SAVE[family])
        if restore is None or save is None:
            continue
        try:
            out = "".join(subprocess.run([*wrapper, save, "-t", t], capture_output=True, text=True,
                                         timeout=timeout).stdout for t in ("nat", "filter"))
            script = delete_script(parse_save(out, prefix))
            if script:
                subprocess.run([*wrapper, restore, "-w", "--noflush"], input=script,
                               capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            continue
