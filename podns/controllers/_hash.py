"""The pod-template hash of workload controllers (Kubernetes `controller.ComputeHash`).

Pure. StatefulSets name their ControllerRevisions with it and Deployments their ReplicaSets
(and the `pod-template-hash` label): FNV-1a 32 over the canonical JSON of the template, plus
the collision count the controller bumps when a name is taken by an object with another
template, rendered with Kubernetes' `SafeEncodeString` alphabet (no vowels, no look-alike
digits), so names look like `web-7b9c8d6f5`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no look-alike digits.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _fnv1a32(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """The safe-encoded hash of a pod template (and collision count)."""
    raw = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return "".join(SAFE_ALPHABET[int(c) % len(SAFE_ALPHABET)] for c in str(_fnv1a32(raw)))
