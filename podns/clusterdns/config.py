"""Cluster DNS configuration: the few knobs, validated in one place (`parse`).

Keep options few (CoreDNS plugin.md). Errors name the bad option and say what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from podns.clusterdns import wire
from podns.clusterdns.forward import Upstream, parse_upstream

POD_MODES = ("insecure", "verified", "disabled")
#: CoreDNS's default record TTL (plugin/kubernetes defaultTTL) and its allowed range
DEFAULT_TTL = 5
MAX_TTL = 3600


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the option."""


@dataclass(frozen=True, slots=True)
class Config:
    listen: tuple[str, int] = ("127.0.0.1", 53)
    zone: str = "cluster.local"
    ttl: int = DEFAULT_TTL
    pods: str = "insecure"
    upstreams: list[Upstream] = field(default_factory=list)
    metrics_addr: tuple[str, int] | None = None
    #: serving processes sharing the address with SO_REUSEPORT (1: just this one)
    workers: int = 1
    #: this process is an extra worker: bind with SO_REUSEPORT, and only once synced (so the
    #: kernel never hands it queries it would SERVFAIL)
    worker: bool = False


def parse_addr(text: str, default_port: int, option: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, `host` or `:port` -> (host, port)."""
    text = text.strip()
    try:
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = int(rest.lstrip(":") or default_port)
        elif text.count(":") > 1:
            host, port = text, default_port
        elif ":" in text:
            host, raw = text.rsplit(":", 1)
            port = int(raw)
        else:
            host, port = text, default_port
    except ValueError as exc:
        raise ConfigError(f"{option}: invalid address {text!r} (want host:port)") from exc
    if not 0 <= port < 65536:
        raise ConfigError(f"{option}: port out of range in {text!r}")
    return host or "0.0.0.0", port


def parse(*, listen: str, zone: str = "cluster.local", ttl: int = DEFAULT_TTL, pods: str = "insecure",
          upstreams: list[str] | None = None, metrics_addr: str | None = None, workers: int = 1,
          worker: bool = False) -> Config:
    """Validate raw option values into a Config; raises ConfigError naming the bad option."""
    if not 0 <= ttl <= MAX_TTL:
        raise ConfigError(f"--ttl must be in range [0, {MAX_TTL}], got {ttl}")
    if pods not in POD_MODES:
        raise ConfigError(f"--pods must be one of {', '.join(POD_MODES)}, got {pods!r}")
    try:
        wire.name_to_wire(zone)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigError(f"--zone: invalid zone {zone!r}: {exc}") from None
    if not zone.strip("."):
        raise ConfigError("--zone must not be the root")
    ups = []
    for text in upstreams or ():
        try:
            ups.append(parse_upstream(text))
        except ValueError as exc:
            raise ConfigError(f"--upstream: invalid address {text!r} ({exc})") from None
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must be in range [1, 64], got {workers}")
    metrics = parse_addr(metrics_addr, 9153, "--metrics-addr") if metrics_addr else None
    return Config(listen=parse_addr(listen, 53, "--listen"), zone=zone.strip(".").lower(), ttl=ttl, pods=pods,
                  upstreams=ups, metrics_addr=metrics, workers=workers, worker=worker)
