"""The reference scenario driven by real kubectl (1.33 and 1.27) against `podns up`.

Only the API server runs (controllers, node agent and DNS are switched off) so the assertions
are about the API alone: apply, get (-o wide/yaml/json), describe, patch, scale, get -w, delete.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import Podns, kubectl_binary

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "db-headless.yaml")

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90),
              pytest.mark.podns_args("--no-controllers", "--no-node", "--no-dns")]

#: extra flags per kubectl version (none: both validate against podns' OpenAPI, v3 and v2)
VALIDATE: dict[str, list[str]] = {"1.33": [], "1.27": [], "installed": []}


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.mark.parametrize("version", ["1.33", "1.27", "installed"])
def test_reference_scenario(podns_module: Podns, version: str) -> None:
    """apply -> get -o wide/yaml -> describe -> patch -> scale -> delete, as the issue lists."""
    k = podns_module.kubectl
    out = ok(k("apply", *VALIDATE[version], "-f", EXAMPLE, version=version))
    assert "service/db-service created" in out and "statefulset.apps/db created" in out

    wide = ok(k("get", "svc,statefulsets", "-o", "wide", version=version))
    svc_line = next(line for line in wide.splitlines() if line.startswith("service/db-service"))
    assert svc_line.split()[1:5] == ["ClusterIP", "None", "<none>", "5432/TCP"]
    assert "app=db" in svc_line
    assert any(line.startswith("statefulset.apps/db") for line in wide.splitlines())

    svc = json.loads(ok(k("get", "svc", "db-service", "-o", "json", version=version)))
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["ports"][0] == {"name": "postgres", "port": 5432, "protocol": "TCP",
                                       "targetPort": "postgres"}
    assert "clusterIP: None" in ok(k("get", "svc", "db-service", "-o", "yaml", version=version))
    assert "Selector:" in ok(k("describe", "svc", "db-service", version=version))

    # re-apply unchanged: client-side apply computes a 3-way patch and sends nothing
    assert "unchanged" in ok(k("apply", *VALIDATE[version], "-f", EXAMPLE, version=version))

    ok(k("patch", "svc", "db-service", "-p", '{"metadata":{"labels":{"tier":"data"}}}',
         version=version))
    labels = ok(k("get", "svc", "db-service", "-o", "jsonpath={.metadata.labels}",
                  version=version))
    assert json.loads(labels) == {"app": "db", "tier": "data"}

    assert "scaled" in ok(k("scale", "statefulset", "db", "--replicas=5", version=version))
    sts = json.loads(ok(k("get", "sts", "db", "-o", "json", version=version)))
    assert sts["spec"]["replicas"] == 5 and sts["metadata"]["generation"] == 2
    assert sts["spec"]["updateStrategy"]["type"] == "RollingUpdate"

    out = ok(k("delete", "-f", EXAMPLE, version=version))
    assert 'service "db-service" deleted' in out
    p = k("get", "svc", "db-service", version=version)
    assert p.returncode != 0 and "NotFound" in p.stderr


def test_get_watch_streams_new_pods(podns_module: Podns) -> None:
    """`kubectl get pods -w` prints a row for a pod created while it watches."""
    env_kubeconfig = str(podns_module.kubeconfig)
    cmd = [kubectl_binary("1.33"), f"--cache-dir={podns_module.cache_dir / 'w'}", "--kubeconfig",
           env_kubeconfig, "get", "pods", "-w", "--request-timeout=0"]
    watcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        pod = ('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"watched"},'
               '"spec":{"containers":[{"name":"c","image":"x"}]}}')
        ok(podns_module.kubectl("create", *VALIDATE["1.33"], "-f", "-", input=pod))
        deadline = time.monotonic() + 10
        assert watcher.stdout is not None
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            lines.append(line)
            if line.startswith("watched"):
                break
        assert any(line.startswith("watched") for line in lines), lines
        assert lines[0].split()[:3] == ["NAME", "READY", "STATUS"]
    finally:
        watcher.kill()
        watcher.wait()
    ok(podns_module.kubectl("delete", "pod", "watched", "--grace-period=0", "--wait=false"))


def test_server_side_apply_and_namespaces(podns_module: Podns) -> None:
    """`apply --server-side` creates then updates; deleting a namespace removes its objects."""
    k = podns_module.kubectl
    ok(k("create", "namespace", "ssa"))
    out = ok(k("apply", "--server-side", *VALIDATE["1.33"], "-n", "ssa", "-f", EXAMPLE))
    assert "serverside-applied" in out
    out = ok(k("apply", "--server-side", *VALIDATE["1.33"], "-n", "ssa", "-f", EXAMPLE))
    assert "serverside-applied" in out
    assert ok(k("get", "sts", "-n", "ssa", "db", "-o", "jsonpath={.spec.replicas}")) == "3"
    # re-applying without the Service's labels removes them (the applier owned them)
    trimmed = Path(EXAMPLE).read_text().replace("  labels:\n    app: db\nspec:\n  clusterIP",
                                                "spec:\n  clusterIP", 1)
    assert trimmed != Path(EXAMPLE).read_text()
    ok(k("apply", "--server-side", "-n", "ssa", "-f", "-", input=trimmed))
    labels = ok(k("get", "svc", "-n", "ssa", "db-service", "-o", "jsonpath={.metadata.labels}"))
    assert labels in ("", "{}"), labels
    ok(k("delete", "namespace", "ssa", "--timeout=20s"))
    p = k("get", "namespace", "ssa")
    assert p.returncode != 0 and "NotFound" in p.stderr
    # what is left in the whole cluster is the API servers' own Service (as on Kubernetes)
    left = ok(k("get", "svc,sts", "-A", "-o",
                "jsonpath={range .items[*]}{.metadata.namespace}/{.kind}/{.metadata.name} {end}"))
    assert left.split() == ["default/Service/kubernetes"], left


def test_readonly_kubeconfig_cannot_write(podns_module: Podns) -> None:
    """The read-only kubeconfig lists but gets Forbidden on writes."""
    k = podns_module.kubectl
    ok(k("get", "ns", kubeconfig=podns_module.readonly_kubeconfig))
    p = k("create", "namespace", "nope", kubeconfig=podns_module.readonly_kubeconfig)
    assert p.returncode != 0 and "Forbidden" in p.stderr


def test_kubectl_bad_input_gets_status_errors(podns_module: Podns) -> None:
    """Invalid objects and unknown resources come back as Kubernetes errors, not crashes."""
    k = podns_module.kubectl
    bad = ('{"apiVersion":"v1","kind":"Service","metadata":{"name":"Bad_Name"},'
           '"spec":{"ports":[{"port":70000}]}}')
    p = k("create", *VALIDATE["1.33"], "-f", "-", input=bad)
    assert p.returncode != 0 and "is invalid" in p.stderr and "Invalid" in p.stderr
    typo = ('{"apiVersion":"v1","kind":"Service","metadata":{"name":"typo"},'
            '"spec":{"ports":[{"port":80}],"selectr":{"a":"b"}}}')
    p = k("create", "-f", "-", input=typo)
    assert p.returncode != 0 and 'unknown field "spec.selectr"' in p.stderr
    p = k("get", "widgets")
    assert p.returncode != 0 and "doesn't have a resource type" in p.stderr


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_imperative_create_commands(podns_module: Podns, version: str) -> None:
    """`kubectl create namespace/configmap/service` (protobuf bodies from kubectl 1.32+)."""
    k = podns_module.kubectl
    ns = f"imp-{version.replace('.', '')}"
    ok(k("create", "namespace", ns, version=version))
    ok(k("create", "configmap", "cfg", "-n", ns, "--from-literal=a=b", version=version))
    ok(k("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:8080", version=version))
    cm = json.loads(ok(k("get", "cm", "cfg", "-n", ns, "-o", "json", version=version)))
    assert cm["data"] == {"a": "b"}
    svc = json.loads(ok(k("get", "svc", "web", "-n", ns, "-o", "json", version=version)))
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
    assert svc["spec"]["clusterIP"] not in ("", "None")
