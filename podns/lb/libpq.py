"""libpq multi-host connection strings from a headless service's pods.

PostgreSQL clients (libpq, psycopg, asyncpg's DSN parser, pgjdbc in its own syntax) accept
several hosts and pick the writable one with `target_session_attrs=read-write`. Listing every
pod by its stable name (`db-0.db-service.default.svc.cluster.local`) instead of the service
name keeps the string valid while pods come and go, and puts the usual primary (`db-0`) first.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from podns.lb.balancer import Balancer
from podns.lb.endpoint import Endpoint

_ORDINAL = re.compile(r"-(\d+)$")


def _quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _order(ep: Endpoint) -> tuple[int, str]:
    m = _ORDINAL.search(ep.hostname or "")
    return (int(m.group(1)) if m else 1 << 30, ep.hostname or ep.address)


def conninfo(
    pool: Balancer | Iterable[Endpoint],
    *,
    service_domain: str | None = None,
    dbname: str | None = None,
    user: str | None = None,
    target_session_attrs: str = "read-write",
    connect_timeout: int | None = 2,
    use_names: bool = True,
    **extra: str,
) -> str:
    """A libpq keyword/value conninfo string listing every usable pod, ordinal order first.

    With `use_names` (default) pods with a hostname are listed by their stable DNS name
    `<hostname>.<service_domain>` (default: the pool's service FQDN), others by address."""
    if isinstance(pool, Balancer):
        endpoints = [e for e in pool.endpoints if e.usable]
        domain = service_domain or pool.target.fqdn.rstrip(".")
    else:
        endpoints = [e for e in pool if e.usable]
        domain = service_domain or ""
    endpoints.sort(key=_order)
    hosts = [
        f"{e.hostname}.{domain}" if use_names and e.hostname and domain else e.address for e in endpoints
    ]
    parts = [f"host={_quote(','.join(hosts))}", f"port={','.join(str(e.port) for e in endpoints)}"]
    if dbname:
        parts.append(f"dbname={_quote(dbname)}")
    if user:
        parts.append(f"user={_quote(user)}")
    if connect_timeout is not None:
        parts.append(f"connect_timeout={connect_timeout}")
    parts.append(f"target_session_attrs={_quote(target_session_attrs)}")
    parts.extend(f"{k}={_quote(v)}" for k, v in extra.items())
    return " ".join(parts)
