"""The distributed store: etcd v3 over its JSON gRPC gateway (work in progress).

Placeholder until the backend lands: opening it raises Unavailable.
"""

from __future__ import annotations

from podns.store.errors import Unavailable


class EtcdStore:
    """`Store` over an etcd cluster (not implemented yet)."""

    def __init__(self, endpoints: list[str]) -> None:
        raise Unavailable(f"the etcd store is not implemented yet ({', '.join(endpoints)})")
