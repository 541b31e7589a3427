"""The read-only web dashboard at `/ui/`: static page, and the DNS metrics it shows.

What this module owns: the routes under `/ui/`. The page itself (`static/index.html`, `static/app.js`,
`static/style.css`) holds no data and is served without a token, so a browser can load it before
the user logs in; everything the page shows comes from calls made with the user's bearer token:
the Kubernetes REST API (list + watch, exactly as kubectl uses it) and `/ui/dns-metrics`.

`/ui/dns-metrics` is a small authenticated proxy to the cluster DNS server's Prometheus
endpoint. The API server must not import the DNS server (import-linter layering), so whoever
starts it (`podns up`, or `podns apiserver --dns-metrics-url`) tells it the URL through
`UiOptions`, which may be filled in after start-up: `podns up` starts the DNS server after the
API server. The proxy parses the text exposition into JSON samples (no histogram buckets), so
the page computes query rates from two scrapes without a Prometheus parser of its own.

Errors: no DNS metrics URL -> 404 Status; the DNS server unreachable or answering garbage ->
503 Status. Unknown files under /ui/ -> 404 Status (the error middleware's).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from podns.api import statuserror
from podns.api.handlers.dispatch import json_response

#: the dashboard's files, packaged beside this module (pyproject package-data)
UI_DIR = Path(__file__).with_name("static")
#: file name -> Content-Type of the static files served under /ui/
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
#: paths served without a token (the static page holds no data)
PUBLIC_PATHS = frozenset({"/ui", "/ui/", *(f"/ui/{name}" for name in STATIC_FILES)})
#: headers of every static file: no third-party code, no framing, nothing cached across upgrades
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
#: seconds the proxy waits for the DNS server's /metrics
METRICS_TIMEOUT = 3.0
#: largest /metrics body the proxy reads (podns's is a few KiB; CoreDNS's well under 1 MiB)
METRICS_MAX_BYTES = 4 << 20

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(slots=True)
class UiOptions:
    """What the dashboard needs from whoever starts the API server; read at request time."""

    dns_metrics_url: str | None = None  # the DNS server's Prometheus /metrics URL; None: not shown


def parse_metrics(text: str) -> list[dict[str, Any]]:
    """Prometheus text exposition -> [{"name", "labels", "value"}], without histogram buckets.

    Raises ValueError when a line is not a sample, so a wrong URL (an HTML page, say) is
    reported instead of shown as an empty chart."""
    out: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"not a Prometheus sample: {line[:80]!r}")
        name, labels, value = m.groups()
        if name.endswith("_bucket"):
            continue
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            continue
        out.append({"name": name, "labels": dict(_LABEL.findall(labels or "")), "value": number})
    return out


async def scrape(url: str) -> list[dict[str, Any]]:
    """The samples at `url`; raises statuserror.ApiError(503) when they cannot be had."""
    timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as resp:
            if resp.status != 200:
                raise ValueError(f"HTTP {resp.status}")
            body = await resp.content.read(METRICS_MAX_BYTES)
        return parse_metrics(body.decode("utf-8", errors="replace"))
    except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
        raise statuserror.ApiError(503, "ServiceUnavailable",
                              f"cannot read DNS metrics from {url}: {exc or type(exc).__name__}") from None


def _static(name: str) -> web.Response:
    body = (UI_DIR / name).read_bytes()
    return web.Response(body=body, headers={"Content-Type": STATIC_FILES[name], **SECURITY_HEADERS})


def add_routes(app: web.Application, options: UiOptions) -> None:
    """Mount the dashboard on `app` (authentication is the app's middleware; see PUBLIC_PATHS)."""

    async def root(request: web.Request) -> web.StreamResponse:
        if request.path == "/ui":
            raise web.HTTPFound("/ui/")
        return _static("index.html")

    async def static_file(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise statuserror.ApiError(404, "NotFound", f"the dashboard has no file {name!r}")
        return _static(name)

    async def dns_metrics(request: web.Request) -> web.Response:
        url = options.dns_metrics_url
        if not url:
            raise statuserror.ApiError(404, "NotFound", "DNS metrics are not available: start the API "
                                  "server with --dns-metrics-url (podns up does this itself)")
        samples = await scrape(url)
        return json_response({"url": url, "time": time.time(), "samples": samples})

    app.router.add_get("/ui", root)
    app.router.add_get("/ui/", root)
    app.router.add_get("/ui/dns-metrics", dns_metrics)
    app.router.add_get("/ui/{name}", static_file)
