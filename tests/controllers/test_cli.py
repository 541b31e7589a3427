"""`podns controller-manager` flags: durations, limits and controller names are checked up front."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from podns.cli.controller_manager import controller_list, duration, endpoints_limit, options_from
from podns.controllers.manager import ALL_CONTROLLERS


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("40s", 40.0), ("1m30s", 90.0), ("500ms", 0.5), ("2", 2.0), ("1h", 3600.0), ("0.5s", 0.5)],
)
def test_duration(text: str, seconds: float) -> None:
    """Go-style durations parse to seconds."""
    assert duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "4x", "s", "-1s", "10 s"])
def test_bad_duration(text: str) -> None:
    """Anything else is an argparse error naming the value."""
    with pytest.raises(argparse.ArgumentTypeError, match="invalid duration"):
        duration(text)


def test_limits_and_controller_names() -> None:
    """--max-endpoints-per-slice is 1..1000; --controllers takes * or known names only."""
    assert endpoints_limit("100") == 100
    for bad in ("0", "1001", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            endpoints_limit(bad)
    assert controller_list("*") == list(ALL_CONTROLLERS)
    assert controller_list("endpointslice, scheduler") == ["endpointslice", "scheduler"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown controllers"):
        controller_list("endpointslice,horizontalpodautoscaler")


def test_options_from_up_args() -> None:
    """`podns up` args (no --controllers, no leader-elect flags) give every controller."""
    args = argparse.Namespace(node_grace_period=20.0, max_endpoints_per_slice=50)
    opts = options_from(args, leader_elect=False)
    assert list(opts.controllers) == list(ALL_CONTROLLERS) and opts.node_grace_period == 20.0
    assert opts.max_endpoints_per_slice == 50 and not opts.leader_elect


def test_bad_flags_exit_with_usage_error() -> None:
    """A bad flag value exits 2 with a message, before connecting anywhere."""
    r = subprocess.run([sys.executable, "-m", "podns", "controller-manager", "--kubeconfig", "x",
                        "--max-endpoints-per-slice", "5000"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "must be between 1 and 1000" in r.stderr
