"""The node endpoint's streaming routes: `/exec`, `/attach` and `/portForward`, as the kubelet's.

    GET|POST /exec/{namespace}/{pod}/{container}?command=...&stdin=1&stdout=1&stderr=1&tty=1
    GET|POST /attach/{namespace}/{pod}/{container}?stdin=1&stdout=1&stderr=1&tty=1
    GET|POST /portForward/{namespace}/{pod}[?port=N...]

The API server proxies `pods/exec`, `pods/attach` and `pods/portforward` here unchanged (the
upgrade included), after its own authentication and authorization; the endpoint itself only
admits the API server (`podns.node.server`). The wire protocol is the client's choice, as with
the kubelet: `Upgrade: websocket` with a channel subprotocol (or the SPDY tunnel for
port-forward), or `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version`. Errors before the
upgrade are Status JSON bodies, which kubectl prints after "unable to upgrade connection:".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import web

from podns.node.env import ConfigError
from podns.node.runtime.base import ContainerWaiting, ExecSpec, StartError
from podns.node.streaming import attach as attaching
from podns.node.streaming import session, spdy, websocket
from podns.node.streaming.portforward import Dialer, dialer
from podns.node.streaming.transports import WebSocketBytes, upgrade_raw
from podns.objects import apistatus
from podns.objects import remotecommand as rc

Obj = dict[str, Any]


class ExecTarget(Protocol):
    """The container side of a session (a running `Instance` of the runtime)."""

    def exec_spec(self, command: list[str], *, tty: bool = False, stdin: bool = False) -> ExecSpec: ...

    @property
    def running(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PodNetwork:
    """Where a pod's ports are: its IP, and its network namespace in namespace mode."""

    pod: Obj
    ip: str
    netns_path: str | None


#: (namespace, pod, container) -> (target or None, pod or None)
FindContainer = Callable[[str, str, str], tuple[Any, Obj | None]]
#: (namespace, pod) -> the pod's network, None when the pod does not run here
FindPod = Callable[[str, str], PodNetwork | None]


def status(code: int, reason: str, message: str) -> web.Response:
    """A failure answered as the API server answers it: a Status body with the HTTP `code`."""
    body = apistatus.failure(code, reason, message)
    return web.Response(status=code, body=orjson.dumps(body), content_type="application/json")


def _upgrade_kind(request: web.Request) -> str:
    """"websocket", "spdy", or "" when the request asks for no (known) upgrade."""
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        return "websocket"
    if upgrade.startswith("spdy/3.1"):
        return "spdy"
    return ""


def _stream_protocols(request: web.Request) -> str:
    return ",".join(request.headers.getall("X-Stream-Protocol-Version", []))


def _ws_protocols(request: web.Request) -> str:
    return ",".join(request.headers.getall("Sec-WebSocket-Protocol", []))


def _not_here(ns: str, name: str) -> web.Response:
    return status(404, "NotFound", f'pod "{name}" in namespace "{ns}" is not running on this node')


def _no_upgrade() -> web.Response:
    return status(400, "BadRequest", "Upgrade request required")


def _not_negotiated(offered: str, supported: tuple[str, ...]) -> web.Response:
    return status(403, "Forbidden", f"unable to upgrade: unable to negotiate protocol: client supports "
                  f"[{offered}], server supports [{', '.join(supported)}]")


async def _streams(request: web.Request, opts: session.Options,
                   run: Callable[[session.Options, session.Channels], Awaitable[apistatus.Status]],
                   ) -> web.StreamResponse:
    """Upgrade to the client's protocol and run one exec/attach session on it."""
    kind = _upgrade_kind(request)
    if kind == "websocket":
        offered = _ws_protocols(request)
        protocol = rc.negotiate(offered, rc.EXEC_WS_PROTOCOLS)
        if offered and protocol is None:
            return _not_negotiated(offered, rc.EXEC_WS_PROTOCOLS)
        ws = await websocket.accept(request, protocol, autoping=False)  # serve_exec answers PINGs
        await websocket.serve_exec(ws, protocol or rc.WS_V1, opts, run)
        return ws
    if kind == "spdy":
        offered = _stream_protocols(request)
        protocol = rc.negotiate(offered, rc.EXEC_SPDY_PROTOCOLS) if offered else "channel.k8s.io"
        if protocol is None:
            return _not_negotiated(offered, rc.EXEC_SPDY_PROTOCOLS)
        conn = await upgrade_raw(request, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                           "X-Stream-Protocol-Version": protocol})
        await spdy.serve_exec(conn, protocol, opts, run)
        return conn.response
    return _no_upgrade()


def _target(request: web.Request, find: FindContainer
            ) -> tuple[session.Options, Any, web.Response | None]:
    """The session options and the running instance an exec/attach request names by
    namespace/pod/container, or the error answer."""
    opts = session.Options.from_query(request.query)
    if not (opts.stdin or opts.stdout or opts.stderr):
        return opts, None, status(400, "BadRequest", "you must specify at least 1 of stdin, stdout, stderr")
    ns, name, cname = (request.match_info[k] for k in ("namespace", "pod", "container"))
    runner, pod = find(ns, name, cname)
    if pod is None:
        return opts, None, _not_here(ns, name)
    instance: ExecTarget | None = getattr(runner, "proc", None)
    if instance is None or not instance.running:
        return opts, None, status(400, "BadRequest", f'container not found ("{cname}")')
    return opts, instance, None


async def _portforward_websocket(request: web.Request, dial: Dialer, name: str,
                                 uid: str) -> web.StreamResponse:
    """Port forwarding over a WebSocket: the tunnelled SPDY protocol, or the v4 channels."""
    offered = _ws_protocols(request)
    if rc.negotiate(offered, (rc.PORTFORWARD_TUNNEL,)):
        ws = await websocket.accept(request, rc.PORTFORWARD_TUNNEL)
        await spdy.serve_portforward(WebSocketBytes(ws), dial, pod=name, uid=uid)
        return ws
    protocol = rc.negotiate(offered, rc.PORTFORWARD_WS_PROTOCOLS)
    if offered and protocol is None:
        return _not_negotiated(offered, (rc.PORTFORWARD_TUNNEL, *rc.PORTFORWARD_WS_PROTOCOLS))
    try:
        q = request.query
        ports = websocket.parse_ports(q.getall("ports", []) or q.getall("port", []))
    except ValueError as exc:
        return status(400, "BadRequest", str(exc))
    ws = await websocket.accept(request, protocol)
    await websocket.serve_portforward(ws, protocol or rc.WS_V1, ports, dial, pod=name, uid=uid)
    return ws


async def _portforward_spdy(request: web.Request, dial: Dialer, name: str,
                            uid: str) -> web.StreamResponse:
    """Port forwarding over an upgraded SPDY/3.1 connection."""
    offered = _stream_protocols(request)
    if rc.negotiate(offered, (rc.PORTFORWARD_SPDY_PROTOCOL,)) is None:
        return _not_negotiated(offered, (rc.PORTFORWARD_SPDY_PROTOCOL,))
    conn = await upgrade_raw(request, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                       "X-Stream-Protocol-Version": rc.PORTFORWARD_SPDY_PROTOCOL})
    await spdy.serve_portforward(conn, dial, pod=name, uid=uid)
    return conn.response


def add_routes(app: web.Application, find: FindContainer, find_pod: FindPod) -> None:
    """Register the streaming routes on the node endpoint's `app`."""

    async def exec_(request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            return status(400, "BadRequest", "you must specify at least one command for the container")
        opts, runner, error = _target(request, find)
        if error is not None:
            return error
        try:
            spec = runner.exec_spec(list(command), tty=opts.tty, stdin=opts.stdin)
        except (ConfigError, StartError, ContainerWaiting) as exc:
            return status(500, "InternalError", f"error preparing the command's environment: {exc}")
        return await _streams(request, opts, lambda o, ch: session.run(spec, o, ch))

    async def attach_(request: web.Request) -> web.StreamResponse:
        opts, runner, error = _target(request, find)
        if error is not None:
            return error
        if getattr(runner, "sink", None) is None:
            return status(400, "BadRequest", "attach is not supported by this container's runtime")
        return await _streams(request, opts, lambda o, ch: attaching.attach(runner, o, ch))

    async def port_forward(request: web.Request) -> web.StreamResponse:
        ns, name = request.match_info["namespace"], request.match_info["pod"]
        net = find_pod(ns, name)
        if net is None:
            return _not_here(ns, name)
        if not net.ip:
            return status(400, "BadRequest", f"pod {name} has no IP yet")
        dial: Dialer = dialer(net.ip, net.netns_path)
        uid = str((net.pod.get("metadata") or {}).get("uid", ""))
        kind = _upgrade_kind(request)
        if kind == "websocket":
            return await _portforward_websocket(request, dial, name, uid)
        if kind == "spdy":
            return await _portforward_spdy(request, dial, name, uid)
        return _no_upgrade()

    for method in ("GET", "POST"):
        app.router.add_route(method, "/exec/{namespace}/{pod}/{container}", exec_)
        app.router.add_route(method, "/attach/{namespace}/{pod}/{container}", attach_)
        app.router.add_route(method, "/portForward/{namespace}/{pod}", port_forward)
