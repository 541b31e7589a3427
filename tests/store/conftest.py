"""Fixtures for the store tests: a real single-member etcd shared by the etcd tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.etcd_cluster import EtcdCluster, etcd_available, start_etcd_cluster


@pytest.fixture(scope="session")
def etcd1() -> Iterator[EtcdCluster]:
    """One etcd member for the whole session (tests isolate themselves by key root)."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    cluster = start_etcd_cluster(1)
    try:
        yield cluster
    finally:
        cluster.close()
