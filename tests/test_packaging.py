"""Packaging: dependency floors past releases with known security fixes, and httpx as the
`podns[httpx]` extra whose absence `podns.lb.transport` explains."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())

#: the first release with the fix each floor must reach (what the fix is, for the reader)
SECURITY_FLOORS = {
    "aiohttp": "3.12.14",     # request smuggling: chunk extensions (3.10.11), trailer sections (3.12.14)
    "dnspython": "2.6.1",     # TuDoor (CVE-2023-29483): a spoofed reply no longer ends the wait
    "cryptography": "44.0.1",  # OpenSSL in the wheels (CVE-2024-12797), PKCS12 NULL deref (42.0.4)
    "orjson": "3.9.15",       # unbounded recursion on deeply nested input (CVE-2024-27454)
}


def _floor(requirements: list[str], name: str) -> Version:
    for line in requirements:
        req = Requirement(line)
        if req.name.lower() == name:
            floors = [Version(s.version) for s in req.specifier if s.operator in (">=", "==", "~=")]
            assert floors, f"{name} has no lower bound"
            return max(floors)
    raise AssertionError(f"{name} is not a dependency")


@pytest.mark.parametrize("name", sorted(SECURITY_FLOORS))
def test_dependency_floor_is_past_the_security_fix(name: str) -> None:
    """every runtime dependency with a known security fix requires at least the fixed release."""
    assert _floor(PYPROJECT["project"]["dependencies"], name) >= Version(SECURITY_FLOORS[name])


def test_httpx_is_an_optional_extra() -> None:
    """httpx (used only by podns.lb.transport) is offered as `podns[httpx]`, not only to tests."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(Requirement(r).name == "httpx" for r in extras["httpx"])
    assert not any(Requirement(r).name == "httpx" for r in PYPROJECT["project"]["dependencies"])


def test_transport_without_httpx_names_the_extra() -> None:
    """given no httpx installed, importing podns.lb.transport fails with an ImportError that says
    what to install (not a bare ModuleNotFoundError from deep inside)."""
    code = ("import sys; sys.modules['httpx'] = None\n"
            "try:\n    import podns.lb.transport\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert "pip install 'podns[httpx]'" in out.stdout, out.stdout + out.stderr
