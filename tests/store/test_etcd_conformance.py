"""The store conformance suite on the etcd backend, against a real etcd."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from podns.store.etcd import EtcdStore
from podns.store.interface import Store
from tests.etcd_cluster import EtcdCluster
from tests.store.conformance import StoreConformance, StoreFactory

pytestmark = [pytest.mark.timeout(60), pytest.mark.etcd]


class TestEtcd(StoreConformance):
    durable = True
    watch_history_survives_restart = True

    @pytest.fixture
    def store_factory(self, etcd1: EtcdCluster) -> StoreFactory:
        root = f"/t-{uuid.uuid4().hex[:8]}/"

        async def open_(**options: Any) -> Store:
            return EtcdStore(etcd1.endpoints, root=root, **options)

        return open_
