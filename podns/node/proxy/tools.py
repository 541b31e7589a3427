"""Running the kernel NAT backends' command-line tools (`nft`; `iptables-restore`, `iptables-save`
and their ip6 twins), and the errors both backends share.

Every call is a child process with a timeout (a hung tool must not wedge the agent), run without
blocking the event loop. Errors, one root for both backends:

    RulesError              a tool ran and refused (its stderr), or did not answer in time
     +-- RulesToolMissing   the tool is not installed or could not be run at all

Each backend subclasses both (`nft.NftError`/`nft.NftMissing`, `ipt.IptablesError`/
`ipt.IptablesMissing`), so the proxier (`kernel.py`) handles them alike and names the missing
tool by its class in the Event reason (`NftMissing`, `IptablesMissing`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

#: seconds; a full resync of a few thousand rules takes well under one
TOOL_TIMEOUT = 30.0
#: where Debian installs the tools; a user's PATH may not hold it
SBIN = "/usr/sbin:/sbin"


class RulesError(Exception):
    """A kernel NAT backend could not apply, read or delete rules; the message says why."""


class RulesToolMissing(RulesError):
    """The backend's command-line tool is not installed or cannot be run."""


def find_tool(name: str) -> str | None:
    """Where the tool `name` is: on PATH, else in /usr/sbin or /sbin when PATH names no `sbin`
    directory at all (a user's PATH without the admin directories). A PATH that does hold an
    `sbin` directory is taken as the whole truth, so that a PATH without, say, `nft` makes the
    agent run without it (`--proxy-mode auto` then picks iptables; the e2e test does so)."""
    found = shutil.which(name)
    if found is not None:
        return found
    path = os.environ.get("PATH", os.defpath)
    if any(Path(d).name == "sbin" for d in path.split(os.pathsep) if d):
        return None
    return shutil.which(name, path=SBIN)


async def run(command: Sequence[str], *args: str, stdin: str | None = None,
              errors: tuple[type[RulesError], type[RulesToolMissing]] = (RulesError, RulesToolMissing),
              ) -> str:
    """`command args...` (with `stdin`); its stdout. Raises `errors[1]` when the command cannot
    be started, `errors[0]` on a non-zero exit (its stderr) or no answer within TOOL_TIMEOUT."""
    failed, missing = errors
    what = " ".join([Path(command[-1]).name, *args])
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        raise missing(f"cannot run {command[0]}: {exc.strerror or exc}") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None),
                                          TOOL_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise failed(f"{what}: no answer in {TOOL_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        why = err.decode(errors="replace").strip() or f"exit {proc.returncode}"
        raise failed(f"{what}: {why}")
    return out.decode(errors="replace")
