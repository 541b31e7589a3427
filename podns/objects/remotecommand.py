"""The remote-command and port-forward stream protocols of Kubernetes, sans I/O.

What the node agent (and any client in tests) needs to speak `kubectl exec/attach/cp/port-forward`
and the official clients' `stream`/`portforward`, as apimachinery's `util/remotecommand`,
`util/httpstream/wsstream` and the kubelet's cri streaming server define them:

- WebSocket subprotocols (`Sec-WebSocket-Protocol`): `v5.channel.k8s.io` (v4 plus the CLOSE
  signal, channel 255, that half-closes a channel: kubectl 1.30+ closes stdin with it),
  `v4.channel.k8s.io`, their `base64.` text variants and the legacy `channel.k8s.io`. Each
  binary message is one channel byte then payload; base64 variants send text messages whose
  first character is the channel digit and the rest base64. For port-forward over WebSocket,
  port i uses channels 2i (data) and 2i+1 (error), and the first message on each is the port
  as a little-endian uint16.
- SPDY stream protocols (`X-Stream-Protocol-Version`): `v4.channel.k8s.io` ... `channel.k8s.io`
  for exec/attach (one SPDY stream per `streamType` header: error, stdin, stdout, stderr,
  resize), `portforward.k8s.io` for port-forward (a data and an error stream per connection,
  headers `port` and `requestID`); `SPDY/3.1+portforward.k8s.io` is the WebSocket subprotocol
  under which kubectl 1.31+ tunnels that SPDY session.
- The error channel/stream carries a `metav1.Status` JSON (v4+): Success, or Failure with reason
  `NonZeroExitCode` and a cause `ExitCode` holding the code, which kubectl turns into
  "command terminated with exit code N" and its own exit code.
"""

from __future__ import annotations

import base64
import json

from podns.objects.apistatus import Status

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
#: v5: `[CLOSE, channel]` half-closes `channel` (the client's stdin EOF)
CLOSE = 255

WS_V5 = "v5.channel.k8s.io"
WS_V4 = "v4.channel.k8s.io"
WS_V4_BASE64 = "v4.base64.channel.k8s.io"
WS_BASE64 = "base64.channel.k8s.io"
WS_V1 = "channel.k8s.io"
#: exec/attach WebSocket subprotocols, preferred first
EXEC_WS_PROTOCOLS = (WS_V5, WS_V4, WS_V4_BASE64, WS_BASE64, WS_V1)
#: port-forward WebSocket subprotocols (the Python client's `portforward`), preferred first
PORTFORWARD_WS_PROTOCOLS = (WS_V4, WS_V4_BASE64, WS_BASE64, WS_V1)
#: kubectl 1.31+ port-forward: a SPDY session inside WebSocket binary messages
PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"

#: SPDY `X-Stream-Protocol-Version` for exec/attach, preferred first (v5 = v4 on SPDY)
EXEC_SPDY_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                       "v2.channel.k8s.io", "channel.k8s.io")
PORTFORWARD_SPDY_PROTOCOL = "portforward.k8s.io"

STREAM_TYPE = "streamtype"
STREAM_TYPES = {"error": ERROR, "stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "resize": RESIZE}


def negotiate(offered: str | None, supported: tuple[str, ...]) -> str | None:
    """The first protocol of `supported` among the comma-separated `offered` ones (header values
    may repeat and be joined); None when none matches."""
    if not offered:
        return None
    wanted = {p.strip() for p in offered.split(",")}
    return next((p for p in supported if p in wanted), None)


def is_base64(protocol: str) -> bool:
    return "base64" in protocol


def encode_ws(protocol: str, channel: int, data: bytes) -> bytes | str:
    """One WebSocket message for `channel` under `protocol` (bytes: send binary; str: text)."""
    if is_base64(protocol):
        return chr(ord("0") + channel) + base64.b64encode(data).decode()
    return bytes((channel,)) + data


def decode_ws(protocol: str, message: bytes | str) -> tuple[int, bytes]:
    """(channel, payload) of one received message; ValueError when it is malformed."""
    if isinstance(message, str):
        if not message:
            raise ValueError("empty message")
        return ord(message[0]) - ord("0"), base64.b64decode(message[1:], validate=False)
    if not message:
        raise ValueError("empty message")
    return message[0], message[1:]


def success_status() -> Status:
    """The error-channel Status of a command that exited 0 (no kind/apiVersion, as the kubelet)."""
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> Status:
    """The error-channel Status of a command that ended with `code` (Success for 0)."""
    if code == 0:
        return success_status()
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command, exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> Status:
    """The error-channel Status of a session that failed before or instead of an exit code."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def status_bytes(status: Status, protocol: str) -> bytes:
    """What goes on the error channel: the Status JSON (v4, v5), or for older protocols only a
    failure's message (nothing for success)."""
    if protocol.startswith(("v4.", "v5.")):
        return json.dumps(status, separators=(",", ":")).encode()
    if status.get("status") == "Success":
        return b""
    return str(status.get("message", "")).encode()


def parse_resize(payload: bytes) -> tuple[int, int] | None:
    """(columns, rows) of one resize message `{"Width": w, "Height": h}`; None if malformed."""
    try:
        size = json.loads(payload)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, KeyError, TypeError):
        return None
    if not (0 <= width < 65536 and 0 <= height < 65536):
        return None
    return width, height


def query_flag(value: str | None) -> bool:
    """The kubelet's (`1`) and the API's (`true`) spelling of a boolean query parameter."""
    return (value or "").lower() in ("1", "true")
