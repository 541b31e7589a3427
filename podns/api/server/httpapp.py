"""The aiohttp application of the API server: middlewares and the route table.

Request path: error middleware (every failure becomes a Kubernetes `Status`; an unexpected
exception is logged once and answered 500, never a traceback) -> authentication middleware
(bearer token, except /healthz, /livez, /readyz, /version) -> route: health, version,
discovery, OpenAPI, or the one resource handler that serves every REST URL.
"""

from __future__ import annotations

import logging
import platform
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

from podns import __version__ as podns_version
from podns.api import statuserror
from podns.api.dashboard import ui
from podns.api.discovery import apidiscovery, openapi
from podns.api.encoding import codec
from podns.api.handlers import authorization, watch
from podns.api.handlers.dispatch import USER, ResourceHandlers, json_response
from podns.api.handlers.rest import Rest
from podns.api.handlers.watchmux import WatchMux
from podns.api.resources.registry import Registry
from podns.api.server import authentication
from podns.api.server.audit import AuditLog

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: the Kubernetes version podns' API imitates (kubectl warns beyond +-1 minor of skew)
KUBE_MAJOR, KUBE_MINOR = "1", "33"


def version_info() -> dict[str, Any]:
    """The /version body."""
    return {
        "major": KUBE_MAJOR, "minor": KUBE_MINOR,
        "gitVersion": f"v{KUBE_MAJOR}.{KUBE_MINOR}.0-podns.{podns_version}",
        "gitCommit": "", "gitTreeState": "clean", "buildDate": "",
        "goVersion": f"python{platform.python_version()}", "compiler": "cpython",
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }


def _status_response(err: statuserror.ApiError) -> web.Response:
    resp = json_response(err.status(), err.code)
    for k, v in err.headers.items():
        resp.headers[k] = v
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error with a Status body; for a watch whose headers were already sent,
    as an ERROR event ending that stream (a second response would corrupt its body)."""
    resp = await _errors_as_status(request, handler)
    stream = request.get(watch.STREAM)
    if stream is not None and resp is not stream and isinstance(resp, web.Response):
        await watch.end_with_error(stream, orjson.loads(resp.body))  # type: ignore[arg-type]
        return stream
    return resp


async def _errors_as_status(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response, or its error as a Status response."""
    try:
        return await handler(request)
    except statuserror.ApiError as err:
        return _status_response(err)
    except web.HTTPRequestEntityTooLarge:
        return _status_response(statuserror.too_large(codec.MAX_BODY_BYTES))
    except web.HTTPNotFound:
        return _status_response(statuserror.no_such_resource())
    except web.HTTPMethodNotAllowed:
        return _status_response(statuserror.method_not_allowed())
    except (RequestPayloadError, BadHttpMessage) as exc:  # e.g. a Content-Encoding the body does not have
        return _status_response(statuserror.bad_request(
            f"error reading the request body: {getattr(exc, 'message', '') or type(exc).__name__}"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _status_response(statuserror.ApiError(exc.status, exc.reason.replace(" ", ""),
                                                exc.text or exc.reason))
    except (ConnectionResetError, TimeoutError):
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path_qs)
        return _status_response(statuserror.internal(type(exc).__name__))


def auth_middleware(tokens: authentication.Tokens | None) -> Callable[..., Any]:
    """Require a known bearer token on everything but the public paths."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if tokens is None or request.path in authentication.PUBLIC_PATHS or request.path in ui.PUBLIC_PATHS:
            request[USER] = authorization.ADMIN_USER
            return await handler(request)
        token = authentication.bearer(request.headers.get("Authorization"))
        user = tokens.user_for(token) if token else None
        if user is None:
            raise statuserror.unauthorized()
        request[USER] = user
        return await handler(request)

    return middleware


def create_app(rest: Rest, registry: Registry, tokens: authentication.Tokens | None,
               ready: Callable[[], bool] = lambda: True,
               ui_options: ui.UiOptions | None = None,
               mux: WatchMux | None = None,
               node_tls: ssl.SSLContext | None = None,
               audit: AuditLog | None = None) -> web.Application:
    """The API server application. `tokens=None` disables authentication (unit tests only);
    `ui_options` configures the dashboard at /ui/ (see podns/api/dashboard/ui.py); `mux` shares one store
    watch per resource between API watches (see podns/api/handlers/watchmux.py); `node_tls` is how the
    server reaches node agents (`certs.kubelet_client_ssl_context`; None: the system's CAs and
    no client certificate, which node agents refuse); `audit` logs one event per request (it sees
    the final status: outermost)."""
    middlewares = [error_middleware, auth_middleware(tokens)]
    if audit is not None:
        middlewares.insert(0, audit.middleware(registry.lookup))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=codec.MAX_BODY_BYTES,
    )
    resources = ResourceHandlers(rest, registry, mux, node_tls=node_tls)

    async def health(request: web.Request) -> web.Response:
        if request.path == "/readyz" and not ready():
            return web.Response(text="[-]store not ready\nreadyz check failed", status=500)
        return web.Response(text="ok")

    async def version(request: web.Request) -> web.Response:
        return json_response(version_info())

    async def serve_discovery(request: web.Request) -> web.Response:
        got = apidiscovery.handle(request.path, request.headers.get("Accept", ""), registry.types)
        if got is None:
            raise statuserror.no_such_resource()
        doc, ctype = got
        return web.Response(body=codec.dumps(doc), headers={"Content-Type": ctype})

    async def serve_openapi(request: web.Request) -> web.Response:
        got = openapi.handle(request.path, request.query, request.headers.get("Accept", ""),
                             registry.types)
        if got is None:
            raise statuserror.no_such_resource()
        body, ctype = got
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def resource(request: web.Request) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if parts in (["api"], ["apis"], ["api", "v1"]) or (
                parts and parts[0] == "apis" and len(parts) <= 3):
            if request.method != "GET":
                raise statuserror.method_not_allowed()
            return await serve_discovery(request)
        return await resources.handle(request)

    for path in ("/healthz", "/livez", "/readyz"):
        app.router.add_get(path, health)
    app.router.add_get("/version", version)
    app.router.add_get("/openapi/{tail:.*}", serve_openapi)
    app.router.add_get("/swagger-2.0.0.pb-v1", serve_openapi)
    app.router.add_route("*", "/api", resource)
    app.router.add_route("*", "/api/{tail:.*}", resource)
    app.router.add_route("*", "/apis", resource)
    app.router.add_route("*", "/apis/{tail:.*}", resource)
    ui.add_routes(app, ui_options or ui.UiOptions())
    return app
