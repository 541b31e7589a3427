"""Helpers every backend shares: key ranges and the resourceVersion stamp."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from podns.store.errors import Invalid
from podns.store.interface import Obj

#: upper bound of every key (keys are str; SQLite compares them as UTF-8, i.e. by code point)
MAX_KEY = "\U0010ffff"


def prefix_range(prefix: str) -> tuple[str, str]:
    """The half-open key range `[lo, hi)` a prefix selects: a subtree for a prefix ending in
    `/` (or empty), else that one key."""
    if not prefix:
        return "", MAX_KEY
    if not prefix.endswith("/"):
        return prefix, prefix + "\x00"
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def with_rv(obj: Obj, rv: int) -> Obj:
    """A shallow copy of `obj` whose `metadata.resourceVersion` is `rv`."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta["resourceVersion"] = str(rv)
    out["metadata"] = meta
    return out


def without_rv(obj: Obj) -> Obj:
    """A shallow copy of `obj` without `metadata.resourceVersion` (how etcd stores objects)."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out


def decode_many(values: Iterable[Any], decode: Callable[[Any], Obj]) -> list[Obj]:
    """Decode a batch of stored values with the cyclic GC paused.

    A list of thousands of objects allocates hundreds of thousands of containers at once, and
    each allocation burst would trigger repeated full collections that scan the whole heap
    (measured: a 10,000-pod list took 3-5x longer with the collector running). Nothing here
    creates cycles, so pausing it for the batch loses nothing; it runs once afterwards.
    """
    if not gc.isenabled():
        return [decode(v) for v in values]
    gc.disable()
    try:
        return [decode(v) for v in values]
    finally:
        gc.enable()


def encode(key: str, obj: Obj) -> bytes:
    """The stored JSON of `obj`; Invalid (naming the key) when it is not representable."""
    try:
        return orjson.dumps(obj)
    except TypeError as exc:
        raise Invalid(f"{key}: object cannot be stored as JSON: {exc}") from None
