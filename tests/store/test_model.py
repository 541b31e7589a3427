"""Model-based check of the stores: random writes, then every past revision re-read.

A plain dict model records the full state after each revision; the store must return exactly
that state for `list(at_rv=R)` (paged with random limits) at every revision R still in history,
and the same write outcomes (AlreadyExists / NotFound / Conflict).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podns.store.errors import AlreadyExists, Conflict, NotFound
from podns.store.etcd import EtcdStore
from podns.store.interface import Store
from podns.store.memory import MemoryStore
from tests.etcd_cluster import EtcdCluster
from tests.store.conformance import pod, rv_of

KEYS = [f"pods/{ns}/{n}" for ns in ("a", "b") for n in ("x", "y", "z")] + ["services/a/x"]

op = st.tuples(
    st.sampled_from(["create", "update", "delete", "cas-update", "cas-delete"]),
    st.sampled_from(KEYS),
    st.integers(0, 3),
)


async def run(open_: Callable[[], Store], ops: list[tuple[str, str, int]], limits: list[int]) -> None:
    store = open_()
    model: dict[str, dict[str, Any]] = {}
    rvs: dict[str, int] = {}
    history: dict[int, dict[str, dict[str, Any]]] = {}
    try:
        for kind, key, v in ops:
            obj = pod(key.rsplit("/", 1)[1], key.split("/")[1], v=v)
            try:
                if kind == "create":
                    out = await store.create(key, obj)
                    assert key not in model
                elif kind in ("update", "cas-update"):
                    expected = rvs.get(key, 1) - (v % 2) if kind == "cas-update" else None
                    out = await store.update(key, obj, expected_rv=expected)
                    assert key in model and (expected is None or expected == rvs[key])
                else:
                    expected = rvs.get(key, 1) - (v % 2) if kind == "cas-delete" else None
                    out = await store.delete(key, expected_rv=expected)
                    assert key in model and (expected is None or expected == rvs[key])
            except AlreadyExists:
                assert kind == "create" and key in model
                continue
            except NotFound:
                assert key not in model
                continue
            except Conflict:
                assert key in model and rvs[key] != expected
                continue
            rv = rv_of(out)
            if kind.endswith("delete"):
                model.pop(key)
                rvs.pop(key)
            elif rv != rvs.get(key):
                model[key] = out
                rvs[key] = rv
            history[await store.current_rv()] = dict(model)
        assert not history or (await store.current_rv()) == max(history)
        for at, state in history.items():
            for prefix in ("pods/", "pods/a/", "services/", ""):
                want = [state[k] for k in sorted(state) if k.startswith(prefix)]
                got: list[dict[str, Any]] = []
                limit = limits[at % len(limits)]
                page = await store.list(prefix, limit=limit, at_rv=at)
                got += page.items
                while page.continue_key is not None:
                    page = await store.list(prefix, limit=limit, start_after=page.continue_key,
                                            at_rv=page.rv)
                    got += page.items
                assert got == want, (at, prefix)
    finally:
        await store.close()


@pytest.mark.timeout(60)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, min_size=1, max_size=40), limits=st.lists(st.integers(1, 4), min_size=1))
def test_every_past_revision_reads_back(ops: list[tuple[str, str, int]], limits: list[int]) -> None:
    """given random writes, a paged list at each past revision equals the model's state then."""
    asyncio.run(run(MemoryStore, ops, limits))


@pytest.mark.etcd
@pytest.mark.timeout(90)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=30), limits=st.lists(st.integers(1, 4), min_size=1))
def test_every_past_revision_reads_back_on_etcd(
    etcd1: EtcdCluster, ops: list[tuple[str, str, int]], limits: list[int]
) -> None:
    """the same on a real etcd (each example under its own key root)."""

    def open_() -> Store:
        return EtcdStore(etcd1.endpoints, root=f"/m-{uuid.uuid4().hex[:8]}/", compact_interval=0)

    asyncio.run(run(open_, ops, limits))
