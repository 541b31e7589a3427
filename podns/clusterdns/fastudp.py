"""The compiled UDP loop (`_fastudp.c`): built with the C compiler on first use, loaded if it can be.

The hot loop of the cluster DNS (recvmmsg, the inline answer of a precomputed question, sendmmsg)
costs ~13 us per query in Python on this project's machines; in C the Python side is left with
the queries the inline path does not answer. There is no binary in the repository and no build
step in pip: `scripts/setup.sh` runs `python -m podns.clusterdns.fastudp` (which builds it), and
a server that finds no build of the current source compiles one itself. The result is named after
a hash of the source and the interpreter's ABI (`_fastudp-<hash><EXT_SUFFIX>`), so an edited
source or another Python never loads a stale build, and written by an atomic rename (processes
that build at once each write their own file; the last rename wins, every one is whole; a build
removes the builds of older sources beside it).

Where it goes: `PODNS_EXT_DIR` if set, else `<venv>/lib/podns-ext` inside a virtualenv, else
`~/.cache/podns/ext`. `PODNS_DNS_COMPILED=0` turns it off (the ctypes loop of `mmsg.py` serves;
the benchmarks use it to compare). When the compiler or Python's headers are missing, or the
build fails, `load()` returns None, `reason()` says why, and the server uses the ctypes loop:
answers are the same bytes either way (tests/clusterdns run on every loop).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_fastudp.c")
#: seconds a build may take (a cold compiler on a loaded 2-core machine takes a few)
BUILD_TIMEOUT = 120.0
_CFLAGS = ("-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
           "-fvisibility=hidden")

_loaded: ModuleType | None = None
_reason: str | None = None


def ext_dir() -> Path:
    """Where builds are kept (see the module docstring)."""
    env = os.environ.get("PODNS_EXT_DIR")
    if env:
        return Path(env)
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "lib" / "podns-ext"
    return Path.home() / ".cache" / "podns" / "ext"


def target() -> Path:
    """The build of the current source for this interpreter."""
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(f"{sys.implementation.cache_tag} {sysconfig.get_config_var('EXT_SUFFIX')}".encode())
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return ext_dir() / f"_fastudp-{digest.hexdigest()[:16]}{suffix}"


def build(out: Path | None = None) -> Path:
    """Compile the source into `out` (default `target()`); OSError or RuntimeError when it cannot."""
    out = out or target()
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("no C compiler (cc)")
    include = sysconfig.get_paths()["include"]
    if not Path(include, "Python.h").exists():
        raise RuntimeError(f"no Python.h in {include} (Debian: python3-dev)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        done = subprocess.run([*cc.split(), *_CFLAGS, f"-I{include}", str(SOURCE), "-o", tmp],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{cc} failed: {(done.stderr or done.stdout).strip()[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    for old in out.parent.glob(f"_fastudp-*{suffix}"):  # builds of older sources for this Python
        if old != out:                                   # (a process running one keeps its mapping)
            with contextlib.suppress(OSError):
                old.unlink()
    return out


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("podns.clusterdns._fastudp", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(*, compile_missing: bool = True) -> ModuleType | None:
    """The compiled module, building it first when there is no build of this source (once per
    process: a failure is remembered, see `reason()`). None: serve with the ctypes loop."""
    global _loaded, _reason
    if _loaded is not None or _reason is not None:
        return _loaded
    if os.environ.get("PODNS_DNS_COMPILED", "1") == "0":
        _reason = "turned off (PODNS_DNS_COMPILED=0)"
        return None
    if not sys.platform.startswith("linux"):
        _reason = "recvmmsg/sendmmsg are Linux system calls"
        return None
    try:
        path = target()
        try:
            _loaded = _import(path)
        except ImportError:  # not built (or removed by a build of a newer source meanwhile)
            if not compile_missing:
                raise
            log.info("building the compiled UDP loop into %s", path)
            build(path)
            _loaded = _import(path)
    except (OSError, RuntimeError, ImportError, subprocess.SubprocessError) as exc:
        _reason = str(exc) or exc.__class__.__name__
        log.warning("the compiled UDP loop is not available (%s): serving with the Python loop", _reason)
    return _loaded


def reason() -> str | None:
    """Why `load()` returned None (None when it loaded or was not tried)."""
    return _reason


def main(argv: list[str] | None = None) -> int:
    """`python -m podns.clusterdns.fastudp [--quiet]`: build (if needed) and load; exit 1 when it
    cannot, saying why. `--quiet` (scripts/setup.sh): say nothing when a build was already there."""
    quiet = "--quiet" in (sys.argv[1:] if argv is None else argv)
    built = not target().exists()
    module = load()
    if module is None:
        print(f"podns: compiled UDP loop not available ({_reason}); the Python loop will serve",
              file=sys.stderr)
        return 1
    if built or not quiet:
        print(f"podns: compiled UDP loop ready ({module.__file__})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
