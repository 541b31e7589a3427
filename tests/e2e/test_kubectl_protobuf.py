"""Real kubectl 1.33 and 1.32 (protobuf request bodies) against a real podns API server.

kubectl 1.32+ send imperative `create` bodies as `application/vnd.kubernetes.protobuf`
(tests/api/test_protobuf_kubectl.py proves which commands do); here they must work end to end,
alongside `describe` (Accept protobuf-first, answered in JSON), `delete`, `scale` and `apply`.
An object created with kubectl 1.27 (JSON) and with 1.33 (protobuf) must be stored alike, and
bad protobuf bodies sent by hand must get Kubernetes `Status` errors, never a 500.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from podns.api.encoding import protobuf

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

STATEFULSET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: python:3, command: [sleep, "3600"]}]
"""


def ok(result: Any) -> str:
    assert result.returncode == 0, result.stderr
    return str(result.stdout)


def get(podns: Any, *args: str) -> dict[str, Any]:
    return json.loads(ok(podns.kubectl("get", *args, "-o", "json")))


def request(podns: Any, method: str, path: str, body: bytes | None,
            content_type: str = protobuf.PROTOBUF) -> tuple[int, dict[str, Any]]:
    """One HTTPS request with the admin token; returns (status, parsed JSON body)."""
    ctx = ssl.create_default_context(cafile=str(podns.ca_path))
    req = urllib.request.Request(podns.api_url + path, data=body, method=method, headers={
        "Authorization": f"Bearer {podns.admin_token}", "Content-Type": content_type,
        "Accept": "application/vnd.kubernetes.protobuf,application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


@pytest.fixture
def apiserver(start_podns: Callable[..., Any]) -> Any:
    """A fresh `podns apiserver` (the API is all these commands need)."""
    return start_podns(command="apiserver")


@pytest.mark.parametrize("version", ["1.33", "1.32"])
def test_imperative_commands(apiserver: Any, version: str) -> None:
    """Given kubectl 1.3x, when it creates, describes and deletes objects with protobuf
    bodies, then each command succeeds and the stored objects carry what was asked."""
    k = apiserver.kubectl

    def run(*args: str) -> str:
        return ok(k(*args, version=version))

    assert "namespace/team created" in run("create", "namespace", "team")
    run("create", "service", "clusterip", "web", "--tcp=80:8080", "-n", "team")
    run("create", "service", "clusterip", "db", "--clusterip=None", "-n", "team")
    run("create", "service", "externalname", "ext", "--external-name=db.example.org", "-n", "team")
    run("create", "service", "nodeport", "np", "--tcp=80:8080", "--node-port=30080", "-n", "team")
    run("create", "configmap", "conf", "--from-literal=mode=fast", "--from-literal=empty=", "-n", "team")
    run("create", "secret", "generic", "pw", "--from-literal=password=hunter2", "-n", "team")
    run("create", "serviceaccount", "robot", "-n", "team")

    web = get(apiserver, "svc", "web", "-n", "team")
    assert web["spec"]["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80,
                                     "targetPort": 8080}]
    assert web["spec"]["selector"] == {"app": "web"}
    assert web["spec"]["clusterIP"] not in ("", "None")
    assert get(apiserver, "svc", "db", "-n", "team")["spec"]["clusterIP"] == "None"
    ext = get(apiserver, "svc", "ext", "-n", "team")["spec"]
    assert (ext["type"], ext["externalName"]) == ("ExternalName", "db.example.org")
    np = get(apiserver, "svc", "np", "-n", "team")["spec"]
    assert (np["type"], np["ports"][0]["nodePort"]) == ("NodePort", 30080)
    assert get(apiserver, "cm", "conf", "-n", "team")["data"] == {"mode": "fast", "empty": ""}
    assert get(apiserver, "secret", "pw", "-n", "team")["data"] == {"password": "aHVudGVyMg=="}
    assert get(apiserver, "sa", "robot", "-n", "team")["metadata"]["name"] == "robot"

    run("run", "p", "--image=busybox", "--port=8080", "--env=A=b", "--restart=Never", "-n", "team",
        "--", "sleep", "100")
    [container] = get(apiserver, "pod", "p", "-n", "team")["spec"]["containers"]
    assert container["args"] == ["sleep", "100"] and container["env"] == [{"name": "A", "value": "b"}]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]

    described = run("describe", "svc", "web", "-n", "team")
    assert "TargetPort:" in described and "8080/TCP" in described

    # a Deployment body (protobuf from 1.32+) decoded, defaulted and stored as Kubernetes does
    run("create", "deployment", "d", "--image=nginx", "--replicas=2", "-n", "team")
    dep = get(apiserver, "deployment", "d", "-n", "team")["spec"]
    assert dep["replicas"] == 2 and dep["selector"] == {"matchLabels": {"app": "d"}}
    assert dep["template"]["spec"]["containers"][0]["image"] == "nginx"
    assert dep["strategy"] == {"type": "RollingUpdate",
                               "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert (dep["revisionHistoryLimit"], dep["progressDeadlineSeconds"]) == (10, 600)

    assert 'service "web" deleted' in run("delete", "svc", "web", "-n", "team")
    assert k("get", "svc", "web", "-n", "team", version=version).returncode != 0


def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """An object without what differs between two creations of the same thing."""
    obj = json.loads(json.dumps(obj))
    for key in ("namespace", "uid", "resourceVersion", "creationTimestamp", "managedFields"):
        obj["metadata"].pop(key, None)
    spec = obj.get("spec", {})
    for key in ("clusterIP", "clusterIPs"):
        spec.pop(key, None)
    for port in spec.get("ports", []):
        port.pop("nodePort", None)
    return obj


#: (command, kind, name): commands that kubectl 1.27 sends as JSON and 1.33 as protobuf
SAME_OBJECT = [
    (["create", "service", "clusterip", "web", "--tcp=80:8080", "--tcp=443"], "svc", "web"),
    (["create", "service", "clusterip", "db", "--clusterip=None"], "svc", "db"),
    (["create", "service", "nodeport", "np", "--tcp=80:8080"], "svc", "np"),
    (["create", "service", "externalname", "ext", "--external-name=a.example.org"], "svc", "ext"),
    (["create", "configmap", "conf", "--from-literal=a=1", "--from-literal=b="], "cm", "conf"),
    (["create", "secret", "generic", "pw", "--from-literal=k=v"], "secret", "pw"),
    (["create", "serviceaccount", "robot"], "sa", "robot"),
]


def test_json_and_protobuf_bodies_store_the_same_object(apiserver: Any) -> None:
    """Given the same commands from kubectl 1.27 (JSON) and 1.33 (protobuf), in two
    namespaces, then each pair of stored objects is identical but for identity and
    allocations (cluster IPs, node ports)."""
    for ns in ("via-json", "via-pb"):
        ok(apiserver.kubectl("create", "namespace", ns))
    for args, kind, name in SAME_OBJECT:
        ok(apiserver.kubectl(*args, "-n", "via-json", "--validate=false", version="1.27"))
        ok(apiserver.kubectl(*args, "-n", "via-pb", version="1.33"))
        via_json = get(apiserver, kind, name, "-n", "via-json")
        via_pb = get(apiserver, kind, name, "-n", "via-pb")
        assert _comparable(via_pb) == _comparable(via_json), args


@pytest.mark.parametrize("version", ["1.33", "1.32"])
def test_apply_and_scale(apiserver: Any, version: str) -> None:
    """Given a StatefulSet applied with kubectl 1.3x, when it is scaled and re-applied, then
    the stored replicas follow each command."""
    k = apiserver.kubectl
    # --validate=false: client-side validation needs the OpenAPI documents (api-core's part);
    # the apply itself (GET, then create or a strategic-merge PATCH) is what is tested here
    ok(k("apply", "--validate=false", "-f", "-", input=STATEFULSET, version=version))
    assert "scaled" in ok(k("scale", "statefulset", "db", "--replicas=3", version=version))
    assert get(apiserver, "sts", "db")["spec"]["replicas"] == 3
    ok(k("apply", "--validate=false", "-f", "-", input=STATEFULSET.replace("replicas: 1", "replicas: 2"),
         version=version))
    assert get(apiserver, "sts", "db")["spec"]["replicas"] == 2
    assert 'statefulset.apps "db" deleted' in ok(k("delete", "statefulset", "db", version=version))


def test_protobuf_delete_options(apiserver: Any) -> None:
    """Given DeleteOptions sent as protobuf (as client-go typed clients may), then the
    preconditions in it are honoured: a wrong uid is 409, the right one deletes."""
    ok(apiserver.kubectl("create", "configmap", "gone", "--from-literal=a=b"))
    uid = get(apiserver, "cm", "gone")["metadata"]["uid"]
    path = "/api/v1/namespaces/default/configmaps/gone"

    def options(precondition_uid: str) -> bytes:
        return protobuf.encode({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                "preconditions": {"uid": precondition_uid}})

    code, body = request(apiserver, "DELETE", path, options("not-the-uid"))
    assert (code, body["kind"], body["reason"]) == (409, "Status", "Conflict")
    code, body = request(apiserver, "DELETE", path, options(uid))
    assert code == 200, body
    assert apiserver.kubectl("get", "cm", "gone").returncode != 0


#: (id, body POSTed to configmaps, expected Status code)
BAD_BODIES = [
    ("truncated", b"k8s\x00\x0a\x50truncated", 400),
    ("no-magic", b'{"kind": "ConfigMap"}', 400),
    ("magic-only", b"k8s\x00", 400),
    ("content-encoding", protobuf.encode({"apiVersion": "v1", "kind": "ConfigMap",
                                          "metadata": {"name": "c"}}) + b"\x1a\x04gzip", 415),
    ("kind-mismatch", protobuf.encode({"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "c"}}), 400),
]


def test_bad_protobuf_bodies_get_status_errors(apiserver: Any) -> None:
    """Given broken protobuf bodies POSTed to configmaps, then each gets a Kubernetes Status
    with the right code (never a 500), and nothing is created."""
    for label, body, code in BAD_BODIES:
        status, answer = request(apiserver, "POST", "/api/v1/namespaces/default/configmaps", body)
        assert (status, answer["kind"], answer["code"]) == (code, "Status", code), (label, answer)
    assert [i["metadata"]["name"] for i in get(apiserver, "cm")["items"]
            if i["metadata"]["name"] == "c"] == []
