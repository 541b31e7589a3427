"""The aiohttp application of the API server: middlewares and the route table.

Request path: error middleware (every failure becomes a Kubernetes `Status`; an unexpected
exception is logged once and answered 500, never a traceback) -> authentication middleware
(client certificate or bearer token, except /healthz, /livez, /readyz, /version) -> route: health, version,
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
from podns.api.handlers import authorization, serviceaccounttoken, watch
from podns.api.handlers.dispatch import IMPERSONATOR, USER, ResourceHandlers, json_response
from podns.api.handlers.rest import Rest
from podns.api.handlers.watchmux import WatchMux
from podns.api.resources.registry import Registry
from podns.api.server import authentication, certs
from podns.api.server.audit import AuditLog
from podns.objects import apistatus

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
    stream: web.StreamResponse | None = request.get(watch.STREAM)
    if stream is not None and resp is not stream and isinstance(resp, web.Response):
        body = orjson.loads(resp.body) if isinstance(resp.body, bytes) else None
        await watch.end_with_error(stream, body if apistatus.is_status(body) else
                                   statuserror.internal(f"HTTP {resp.status}").status())
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


def auth_middleware(tokens: authentication.Tokens | None,
                    authorizer: authorization.Authorizer | None = None,
                    sa_tokens: serviceaccounttoken.TokenAuthenticator | None = None) -> Callable[..., Any]:
    """Require a known bearer token (one of the data dir's, or a valid ServiceAccount token) on
    everything but the public paths, then apply the
    impersonation headers (each one authorized: the `impersonate` verb on users, groups,
    serviceaccounts, uids, userextras, as kube-apiserver's impersonation filter)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if tokens is None or request.path in authentication.PUBLIC_PATHS or request.path in ui.PUBLIC_PATHS:
            request[USER] = authorization.ADMIN
            return await handler(request)
        user = certificate_user(request)
        if user is None:
            token = authentication.bearer(request.headers.get("Authorization"))
            user = tokens.user_for(token) if token else None
            if user is None and token and sa_tokens is not None and sa_tokens.looks_like_jwt(token):
                user = await sa_tokens.authenticate(token)
        if user is None:
            raise statuserror.unauthorized()
        request[USER] = effective = impersonate(user, request.headers, authorizer)
        if effective is not user:
            request[IMPERSONATOR] = user
        return await handler(request)

    return middleware


def certificate_user(request: web.Request) -> authorization.UserInfo | None:
    """The user of the client certificate the connection presented (verified against the
    cluster CA during the handshake: `certs.server_ssl_context`), as Kubernetes' x509
    authenticator reads it: CN the user, each O a group, plus `system:authenticated`."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    found = certs.peer_identity(ssl_object.getpeercert())
    if found is None:
        return None
    name, groups = found
    return authorization.UserInfo(name, (*groups, authorization.AUTHENTICATED_GROUP))


def impersonate(user: authorization.UserInfo, headers: Any,
                authorizer: authorization.Authorizer | None) -> authorization.UserInfo:
    """The user a request acts as: `user`, or the one its Impersonate-* headers name once
    `user` may impersonate each part (403 worded as Kubernetes otherwise)."""
    name = headers.get(authentication.IMPERSONATE_USER)
    groups = headers.getall(authentication.IMPERSONATE_GROUP, [])
    uid = headers.get(authentication.IMPERSONATE_UID)
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(authentication.IMPERSONATE_EXTRA.lower()):
            extra.setdefault(key[len(authentication.IMPERSONATE_EXTRA):].lower(), []).append(value)
    if name is None:
        if groups or uid or extra:
            raise statuserror.bad_request("requested impersonation of groups, uid or extra "
                                          "without impersonating a user")
        return user
    checks: list[tuple[str, str, str, str]] = []  # (group, resource, namespace, name)
    new_groups: list[str] = []
    prefix = "system:serviceaccount:"
    sa_ns, _, sa_name = name[len(prefix):].partition(":") if name.startswith(prefix) else ("", "", "")
    if sa_ns and sa_name:
        checks.append(("", "serviceaccounts", sa_ns, sa_name))
        new_groups.extend(authorization.service_account_groups(sa_ns))
    else:
        checks.append(("", "users", "", name))
    for g in groups:
        checks.append(("", "groups", "", g))
        new_groups.append(g)
    if uid:
        checks.append(("authentication.k8s.io", "uids", "", uid))
    for key, values in extra.items():
        checks.extend(("authentication.k8s.io", f"userextras/{key}", "", v) for v in values)
    if authorizer is not None:
        for group, resource, namespace, target in checks:
            resource, _, sub = resource.partition("/")
            attrs = authorization.Attributes(user, "impersonate", namespace=namespace, group=group,
                                             resource=resource, subresource=sub, name=target)
            if not authorizer.authorize(attrs):
                raise statuserror.forbidden(user.name, "impersonate", resource, group,
                                            namespace or None, target)
    if name != "system:anonymous" and authorization.AUTHENTICATED_GROUP not in new_groups:
        new_groups.append(authorization.AUTHENTICATED_GROUP)
    return authorization.UserInfo(name, tuple(dict.fromkeys(new_groups)),
                                  tuple((k, tuple(v)) for k, v in extra.items()))


def create_app(rest: Rest, registry: Registry, tokens: authentication.Tokens | None,
               ready: Callable[[], bool] = lambda: True,
               ui_options: ui.UiOptions | None = None,
               mux: WatchMux | None = None,
               node_tls: ssl.SSLContext | None = None,
               audit: AuditLog | None = None,
               authorizer: authorization.Authorizer | None = None,
               sa_signer: serviceaccounttoken.Signer | None = None) -> web.Application:
    """The API server application. `tokens=None` disables authentication (unit tests only);
    `ui_options` configures the dashboard at /ui/ (see podns/api/dashboard/ui.py); `mux` shares one store
    watch per resource between API watches (see podns/api/handlers/watchmux.py); `node_tls` is how the
    server reaches node agents (`certs.kubelet_client_ssl_context`; None: the system's CAs and
    no client certificate, which node agents refuse); `audit` logs one event per request (it sees
    the final status: outermost); `authorizer` is RBAC (None: every authenticated request is
    allowed, unit tests only); `sa_signer` issues (TokenRequest) and verifies ServiceAccount tokens
    (None: neither)."""
    sa_tokens = (serviceaccounttoken.TokenAuthenticator(sa_signer, rest.store)
                 if sa_signer is not None else None)
    middlewares = [error_middleware, auth_middleware(tokens, authorizer, sa_tokens)]
    if audit is not None:
        middlewares.insert(0, audit.middleware(registry.lookup))
    app = web.Application(
        middlewares=middlewares,
        client_max_size=codec.MAX_BODY_BYTES,
    )
    resources = ResourceHandlers(rest, registry, mux, node_tls=node_tls, authorizer=authorizer,
                                 sa_signer=sa_signer)

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
