"""The channel protocol helpers: negotiation, WebSocket channel framing, Status of exit codes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from podns.objects import remotecommand as rc


@pytest.mark.parametrize("offered, want", [
    ("v5.channel.k8s.io,v4.channel.k8s.io", rc.WS_V5),
    ("v4.channel.k8s.io", rc.WS_V4),
    ("channel.k8s.io, base64.channel.k8s.io", rc.WS_BASE64),
    ("v9.channel.k8s.io", None),
    ("", None),
])
def test_negotiate_prefers_the_newest(offered: str, want: str | None) -> None:
    assert rc.negotiate(offered, rc.EXEC_WS_PROTOCOLS) == want


@given(st.sampled_from(rc.EXEC_WS_PROTOCOLS), st.integers(0, 9), st.binary(max_size=100))
def test_ws_messages_round_trip(protocol: str, channel: int, data: bytes) -> None:
    assert rc.decode_ws(protocol, rc.encode_ws(protocol, channel, data)) == (channel, data)


def test_exit_status_is_what_kubectl_reads() -> None:
    """exit code 3 -> NonZeroExitCode with an ExitCode cause "3"; 0 -> Success; v1 gets text."""
    status = json.loads(rc.status_bytes(rc.exit_status(3), rc.WS_V4))
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(rc.status_bytes(rc.exit_status(0), rc.WS_V5)) == {"metadata": {}, "status": "Success"}
    assert rc.status_bytes(rc.exit_status(0), rc.WS_V1) == b""
    assert b"exit code 3" in rc.status_bytes(rc.exit_status(3), rc.WS_V1)


@pytest.mark.parametrize("payload, want", [
    (b'{"Width":80,"Height":24}', (80, 24)),
    (b'{"Width":-1,"Height":24}', None),
    (b"garbage", None),
    (b'{"Width":"x"}', None),
])
def test_parse_resize(payload: bytes, want: tuple[int, int] | None) -> None:
    assert rc.parse_resize(payload) == want
