"""podns.objects.endpointslices: an endpoint's conditions read with Kubernetes' defaults."""

from __future__ import annotations

from typing import Any

import pytest

from podns.objects.endpointslices import endpoint_ready, endpoint_serving, endpoint_terminating


@pytest.mark.parametrize(("conditions", "ready", "serving", "terminating"), [
    (None, True, True, False),
    ({}, True, True, False),
    ({"ready": None, "serving": None, "terminating": None}, True, True, False),
    ({"ready": False}, False, False, False),
    ({"ready": False, "serving": True, "terminating": True}, False, True, True),
    ({"ready": True, "serving": False}, True, False, False),
], ids=["no-conditions", "empty", "all-null", "not-ready", "terminating-serving", "ready-not-serving"])
def test_conditions_default_as_kubernetes_says(conditions: dict[str, Any] | None, ready: bool,
                                                serving: bool, terminating: bool) -> None:
    """Given an endpoint's conditions (unset ready = ready, unset serving = as ready, unset
    terminating = not), the readers answer as every Kubernetes consumer does."""
    ep: dict[str, Any] = {"addresses": ["10.0.0.1"]}
    if conditions is not None:
        ep["conditions"] = conditions
    assert (endpoint_ready(ep), endpoint_serving(ep), endpoint_terminating(ep)) == (
        ready, serving, terminating)
