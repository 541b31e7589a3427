"""Real kubectl wire bytes: protobuf bodies of kubectl 1.32/1.33 decode to kubectl 1.27's JSON.

kubectl 1.27 sends its imperative `create` bodies as JSON; 1.32+ send the same objects as
protobuf. A tiny recording server (answers 400 to every POST, after keeping the body) captures
both, and the decoded protobuf must equal the JSON exactly: no mocks, the real clients' bytes.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from podns.api.encoding import protobuf
from tests._support import kubectl_binary, serve_app

#: (id, kubectl arguments); each creates one object through a typed client
COMMANDS: list[tuple[str, list[str]]] = [
    ("namespace", ["create", "namespace", "foo"]),
    ("service-clusterip", ["create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443"]),
    ("service-clusterip-headless", ["create", "service", "clusterip", "db", "--clusterip=None"]),
    ("service-externalname", ["create", "service", "externalname", "ex", "--external-name=a.b.c"]),
    ("service-nodeport", ["create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080"]),
    ("configmap", ["create", "configmap", "cm", "--from-literal=a=b", "--from-literal=empty="]),
    ("secret", ["create", "secret", "generic", "s", "--from-literal=k=v", "--type=Opaque"]),
    ("serviceaccount", ["create", "serviceaccount", "sa"]),
    ("deployment", ["create", "deployment", "d", "--image=nginx", "--replicas=0", "--port=8080"]),
    ("secret-docker-registry", ["create", "secret", "docker-registry", "reg", "--docker-server=r.example",
                                "--docker-username=u", "--docker-password=p"]),
    # bin.dat (written by the fixture into kubectl's working directory) is not UTF-8,
    # so the ConfigMap carries it in binaryData
    ("configmap-binary", ["create", "configmap", "files", "--from-file=bin=bin.dat"]),
]


class Recorder:
    """An HTTP server that keeps every request body and refuses every write with a Status."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, str, bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method in ("POST", "PUT"):
            self.bodies.append((request.path, request.headers.get("Content-Type", ""), body))
        return web.json_response(
            {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "recorded",
             "reason": "BadRequest", "code": 400}, status=400)


@pytest.fixture
async def recorder() -> Any:
    rec = Recorder()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner, url = await serve_app(app)
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "x",
            "clusters": [{"name": "c", "cluster": {"server": url}}],
            "users": [{"name": "u", "user": {}}],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
        }))
        (Path(tmp) / "bin.dat").write_bytes(b"\x00\x01\xfe\xff")
        rec.workdir = Path(tmp)  # type: ignore[attr-defined]
        rec.kubeconfig = kubeconfig  # type: ignore[attr-defined]
        rec.cache = Path(tmp) / "cache"  # type: ignore[attr-defined]
        yield rec
    await runner.cleanup()


async def capture(rec: Recorder, version: str, args: list[str]) -> tuple[str, bytes]:
    """Run one kubectl command against the recorder; return (Content-Type, body) it sent."""
    binary = kubectl_binary(version)
    before = len(rec.bodies)
    proc = await asyncio.create_subprocess_exec(
        binary, f"--kubeconfig={rec.kubeconfig}", f"--cache-dir={rec.cache}",  # type: ignore[attr-defined]
        "--validate=false", *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=rec.workdir)  # type: ignore[attr-defined]
    await asyncio.wait_for(proc.wait(), 30)
    assert len(rec.bodies) == before + 1, f"kubectl {version} {args} sent no body"
    _path, ctype, body = rec.bodies[-1]
    return ctype, body


@pytest.mark.timeout(60)
@pytest.mark.parametrize("version", ["1.33", "1.32"])
@pytest.mark.parametrize(("args",), [(c[1],) for c in COMMANDS], ids=[c[0] for c in COMMANDS])
async def test_protobuf_body_decodes_to_the_json_body(recorder: Recorder, version: str,
                                                       args: list[str]) -> None:
    """Given the same `kubectl create`, 1.27's JSON body equals 1.3x's decoded protobuf body."""
    json_ct, json_body = await capture(recorder, "1.27", args)
    pb_ct, pb_body = await capture(recorder, version, args)
    assert json_ct.startswith("application/json")
    assert pb_ct == protobuf.PROTOBUF
    assert pb_body.startswith(b"k8s\x00")
    decoded = protobuf.decode(pb_body)
    assert decoded == json.loads(json_body)
    # and the encoder gives back bytes that decode to the same object
    assert protobuf.decode(protobuf.encode(decoded)) == decoded


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("args",), [(c[1],) for c in COMMANDS], ids=[c[0] for c in COMMANDS])
async def test_encoder_reproduces_kubectl_bytes(recorder: Recorder, args: list[str]) -> None:
    """Given kubectl 1.33's bytes, encode(decode(bytes)) is the same bytes: the encoder writes
    fields the way gogo-protobuf does (zero values, field order, sorted map keys)."""
    _ct, body = await capture(recorder, "1.33", args)
    assert protobuf.encode(protobuf.decode(body)) == body
