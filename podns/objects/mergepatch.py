"""JSON merge patch (RFC 7386), the one copy used by the API server's PATCH handler and by the
test doubles of the API (podns.kube.testing's FakeClient, tests/kube/apiserver.py)."""

from __future__ import annotations

import copy
from typing import Any


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch; returns the new document (inputs are not modified): objects
    merge recursively, `null` deletes a key, any other value (lists included) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
