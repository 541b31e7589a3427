"""The node agent's own HTTPS endpoint (the kubelet's port 10250, on the node IP).

Routes:
- `GET /containerLogs/{namespace}/{pod}/{container}`: the container's log, with the kubelet's
  query parameters `follow`, `previous`, `tailLines`, `timestamps`, `sinceSeconds`, `sinceTime`,
  `limitBytes`. The API server's `pods/log` proxies here (`podns.api.handlers.podlog`); errors are
  Kubernetes `Status` JSON bodies with the code the API server should answer with.
- `GET /healthz`: `ok`.
- `GET /pods`: the pods this agent runs (a PodList, as the kubelet's read-only endpoint).
- `/exec`, `/attach`, `/portForward`: streams into pods (`podns.node.streaming.handlers`).

The port is recorded in `Node.status.daemonEndpoints.kubeletEndpoint.Port` and the address is
the node's InternalIP. It serves TLS with a certificate from the cluster CA and, as the kubelet
with `--client-ca-file` and webhook authorization, answers only the API server: every route but
`/healthz` needs a client certificate from the cluster CA (401 Unauthorized without one) whose
common name is the API server's kubelet-client identity (403 Forbidden for any other), see
`podns.objects.nodeapi`. Users reach logs, exec and port-forward through the API server.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from podns.node.container import ContainerRunner
from podns.node.logs import LogOptions, follow_log
from podns.node.streaming import handlers as streaming
from podns.node.streaming.handlers import status as _status
from podns.objects.nodeapi import APISERVER_CLIENT_CN

Obj = dict[str, Any]
#: finds (runner, pod exists) for namespace, pod name, container name
Finder = Callable[[str, str, str], tuple[ContainerRunner | None, Obj | None]]


def serving_ssl_context(cert: Path, key: Path, client_ca: Path) -> ssl.SSLContext:
    """TLS settings of the endpoint: serve `cert`, ask for a client certificate signed by
    `client_ca` (optional at the TLS layer, so a missing one is a 401 Status, not a reset)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(client_ca))
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_identity(request: web.Request) -> str | None:
    """Common name of the verified client certificate of `request` (None: no certificate)."""
    cert = request.transport.get_extra_info("peercert") if request.transport is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


#: routes anyone may call (the kubelet's /healthz lives on its unauthenticated port)
PUBLIC_PATHS = frozenset({"/healthz"})


@web.middleware
async def api_server_only(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                          ) -> web.StreamResponse:
    """Refuse every caller but the API server (see the module docstring)."""
    if request.path not in PUBLIC_PATHS:
        who = client_identity(request)
        if who is None:
            return _status(401, "Unauthorized", "Unauthorized")
        if who != APISERVER_CLIENT_CN:
            return _status(403, "Forbidden", f'user "{who}" is not allowed to use the node endpoint: '
                           "only the API server may")
    return await handler(request)


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def _options(query: Any) -> LogOptions:
    def num(name: str) -> int | None:
        raw = query.get(name)
        if raw in (None, ""):
            return None
        value = int(raw)
        if value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
        return value

    since = num("sinceSeconds")
    return LogOptions(timestamps=_bool(query.get("timestamps")), tail_lines=num("tailLines"),
                      since_seconds=float(since) if since is not None else None,
                      since_time=query.get("sinceTime") or None, limit_bytes=num("limitBytes"))


def make_app(find: Finder, list_pods: Callable[[], list[Obj]],
             find_pod: streaming.FindPod | None = None) -> web.Application:
    """The aiohttp application; `find`, `list_pods` and `find_pod` read the agent's state
    (streams: `podns.node.streaming.handlers`)."""

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def pods(request: web.Request) -> web.Response:
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": list_pods()}
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        ns, name, cname = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            opts = _options(request.query)
        except ValueError as exc:
            return _status(400, "BadRequest", str(exc))
        runner, pod = find(ns, name, cname)
        if pod is None:
            return _status(404, "NotFound", f'pod "{name}" in namespace "{ns}" is not running on this node')
        if runner is None:
            return _status(400, "BadRequest", f"container {cname} is not valid for pod {name}")
        previous = _bool(request.query.get("previous"))
        rc = runner.record.restart_count
        if previous:
            path = runner.log_path(rc - 1)
            if rc == 0 or not path.exists():
                return _status(400, "BadRequest",
                               f'previous terminated container "{cname}" in pod "{name}" not found')
            sink = None
        else:
            path = runner.log_path(rc)
            if runner.instances == 0 and not path.exists():
                reason = (runner.record.state.get("waiting") or {}).get("reason", "ContainerCreating")
                return _status(400, "BadRequest",
                               f'container "{cname}" in pod "{name}" is waiting to start: {reason}')
            sink = runner.sink if _bool(request.query.get("follow")) else None
            if sink is not None and sink.path != path:
                sink = None
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        budget = opts.limit_bytes
        async for line in follow_log(path, sink, opts):
            if budget is not None:
                line = line[:budget]
                budget -= len(line)
            await resp.write(line)
            if budget is not None and budget <= 0:
                break
        await resp.write_eof()
        return resp

    app = web.Application(middlewares=[api_server_only])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/pods", pods)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    streaming.add_routes(app, find, find_pod or (lambda ns, name: None))
    return app
