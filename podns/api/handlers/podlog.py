"""`GET /api/v1/namespaces/{ns}/pods/{name}/log`: the pod's container log, proxied from its node.

As in Kubernetes, the API server keeps no logs: it checks the request against the Pod, finds the
node's agent through the Node object (`status.addresses` InternalIP, then Hostname, and
`status.daemonEndpoints.kubeletEndpoint.Port`), calls it over TLS as the API server's
kubelet-client identity (verifying the node's certificate against the cluster CA), and streams the agent's
`/containerLogs/{ns}/{pod}/{container}` answer back unchanged (plain text; chunked while
`follow=true`). Query parameters passed through: `follow`, `previous`, `tailLines`,
`timestamps`, `sinceSeconds`, `sinceTime`, `limitBytes`.

Errors are raised as `ApiError` (the caller renders the Status): a missing or unknown container
and an unscheduled pod are 400 BadRequest with Kubernetes' wording; an error Status from the
agent (container waiting to start, no previous instance) is passed on with its code; an
unreachable agent is 500 InternalError naming the address tried.

The caller (the API's routing) reads the Pod and its Node from the store and hands them over;
this module does no store access of its own.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from aiohttp import web

from podns.api.statuserror import ApiError, bad_request
from podns.objects import apistatus

Obj = dict[str, Any]

#: query parameters the node agent understands (the kubelet's names)
PASSED = ("follow", "previous", "tailLines", "timestamps", "sinceSeconds", "sinceTime", "limitBytes")
_INTEGER = ("tailLines", "sinceSeconds", "limitBytes")
CONNECT_TIMEOUT = 5.0


def pick_container(pod: Obj, requested: str | None) -> str:
    """The container to read: the requested one (validated), or the only one."""
    spec = pod.get("spec") or {}
    name = (pod.get("metadata") or {}).get("name", "")
    names = [c.get("name", "") for c in spec.get("containers") or []]
    inits = [c.get("name", "") for c in spec.get("initContainers") or []]
    if not requested:
        if len(names) == 1:
            return str(names[0])
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        if inits:
            message += f" or one of the init containers: [{' '.join(inits)}]"
        raise bad_request(message)
    if requested not in names and requested not in inits:
        raise bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def node_endpoint(node: Obj) -> tuple[str, int]:
    """(address, port) of the node agent's endpoint, from the Node's status (the first address
    of a type, as kube-apiserver: a dual-stack node lists its primary InternalIP first)."""
    st = node.get("status") or {}
    addresses: dict[Any, Any] = {}
    for a in st.get("addresses") or []:
        addresses.setdefault(a.get("type"), a.get("address"))
    host = addresses.get("InternalIP") or addresses.get("Hostname") or ""
    port = int(((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0)
    return host, port


def pod_node_address(pod: Obj, node: Obj | None) -> tuple[str, int, str]:
    """(host, port, "host:port") of the agent running `pod` (`node`: its Node, None when that
    does not exist); ApiError with Kubernetes' text for an unscheduled pod or a bad Node."""
    name = (pod.get("metadata") or {}).get("name", "")
    node_name = (pod.get("spec") or {}).get("nodeName")
    if not node_name:
        raise bad_request(f"pod {name} does not have a host assigned")
    if node is None:
        raise ApiError(500, "InternalError", f'node "{node_name}" of pod {name} not found')
    host, port = node_endpoint(node)
    if not host or not port:
        raise ApiError(500, "InternalError", f'node "{node_name}" does not report a kubelet endpoint')
    return host, port, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _query(request: web.Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in PASSED:
        value = request.query.get(key)
        if value is None or value == "":
            continue
        if key in _INTEGER:
            try:
                number = int(value)
            except ValueError:
                raise bad_request(f"{key}: invalid value {value!r}: must be an integer") from None
            if number < 0 or (number == 0 and key != "tailLines"):
                raise bad_request(f"{key}: invalid value {number}: must be greater than 0")
        out[key] = value
    return out


async def proxy_pod_log(request: web.Request, pod: Obj, node: dict[str, Any] | None,
                        tls: ssl.SSLContext) -> web.StreamResponse:
    """Stream the log of `pod`'s container (query `container`) from the agent of `node`.

    `node` is the Node named by `pod.spec.nodeName` (None when it does not exist); `tls` is the
    API server's client side towards node agents (`certs.kubelet_client_ssl_context`)."""
    meta = pod.get("metadata") or {}
    ns, name = meta.get("namespace", "default"), meta.get("name", "")
    container = pick_container(pod, request.query.get("container"))
    _, _, hostport = pod_node_address(pod, node)
    params = _query(request)
    url = f"https://{hostport}/containerLogs/{quote(ns)}/{quote(name)}/{quote(container)}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
    session = aiohttp.ClientSession(timeout=timeout)
    try:
        try:
            upstream = await session.get(url, params=params, ssl=tls)
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(500, "InternalError", f'Get "{url}": {exc}') from None
        async with upstream:
            if upstream.status != 200:
                raise error_from(upstream.status, await upstream.read())
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
            except (ConnectionResetError, aiohttp.ClientError):
                pass  # the client went away, or the node did: the stream simply ends
            return resp
    finally:
        await session.close()


def error_from(code: int, payload: bytes) -> ApiError:
    try:
        st = orjson.loads(payload)
        if apistatus.is_status(st):
            return ApiError(int(st.get("code", code)), str(st.get("reason", "InternalError")),
                            str(st.get("message", "")))
    except (orjson.JSONDecodeError, TypeError, ValueError):
        pass
    return ApiError(code, "InternalError", payload.decode("utf-8", "replace")[:1000])
