"""podns.store: durable, revisioned object storage with watch (see `interface.py`).

Backends: `SQLiteStore` (embedded default), `MemoryStore` (tests), `EtcdStore` (distributed).
`open_store(url)` picks one from a URL, importing only that backend.
"""

from __future__ import annotations

from podns.store.errors import (
    AlreadyExists,
    Conflict,
    Expired,
    Invalid,
    NotFound,
    StoreError,
    TooLarge,
    Unavailable,
)
from podns.store.interface import ListResult, Obj, Store, WatchEvent
from podns.store.tls import EtcdTLS

__all__ = [
    "AlreadyExists",
    "Conflict",
    "EtcdTLS",
    "Expired",
    "Invalid",
    "ListResult",
    "NotFound",
    "Obj",
    "Store",
    "StoreError",
    "TooLarge",
    "Unavailable",
    "WatchEvent",
    "open_store",
]


def open_store(url: str, *, etcd_tls: EtcdTLS | None = None) -> Store:
    """Open the store a URL names; `etcd_tls` (CA, client certificate and key) makes an etcd
    URL's endpoints https.

    - `sqlite:///abs/path.db`, `sqlite://rel/path.db` or a plain path: `SQLiteStore`;
    - `memory://`: `MemoryStore`;
    - `etcd://host1:port1,host2:port2` (or `etcd+https://...`): `EtcdStore` over those endpoints.

    Raises ValueError for an unknown scheme, Unavailable when the backend cannot be opened.
    """
    if url.startswith("memory:"):
        from podns.store.memory import MemoryStore

        return MemoryStore()
    if url.startswith(("etcd://", "etcd+http://", "etcd+https://")):
        from podns.store.etcd import EtcdStore

        scheme, _, rest = url.partition("://")
        proto = "https" if scheme.endswith("https") or etcd_tls is not None else "http"
        hosts = [h for h in rest.strip("/").split(",") if h]
        if not hosts:
            raise ValueError(f"store URL {url!r} names no etcd endpoint")
        return EtcdStore([f"{proto}://{h}" for h in hosts], tls=etcd_tls)
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path:
            raise ValueError(f"store URL {url!r} names no file")
        from podns.store.sqlite import SQLiteStore

        return SQLiteStore(path)
    if "://" in url:
        raise ValueError(f"unknown store URL scheme in {url!r} (want sqlite://, memory:// or etcd://)")
    from podns.store.sqlite import SQLiteStore

    return SQLiteStore(url)
