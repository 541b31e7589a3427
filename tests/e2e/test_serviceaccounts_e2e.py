"""Pods as API clients, end to end with real kubectl (1.33 and 1.27): issue 14's command block
literally (create serviceaccount, create role, rolebinding, auth can-i yes/no, apply
examples/lb-in-pod.yaml, create token); the pod's `lb.Watch()` with no arguments balances over
the headless service; its token (and the script token) may read EndpointSlices but not Secrets
(Kubernetes' 403); a deleted pod's token is refused (401), as is a garbled token; in namespace
mode the official Python client's load_incluster_config() works inside a pod."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from tests._support import free_service_cidr, wait_until

from .conftest import REPO, Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240),
              pytest.mark.podns_args("--container-runtime", "process")]


def out(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def api_get(podns: Podns, path: str, token: str) -> tuple[int, dict[str, object]]:
    """GET `path` with a bearer token (TLS verified against the cluster CA): (status, body)."""
    ctx = ssl.create_default_context(cafile=str(podns.ca_path))
    req = urllib.request.Request(podns.api_url + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def pod_token(podns: Podns, pod: str) -> str:
    """The token the node agent wrote into the pod's ServiceAccount volume."""
    uid = out(podns.kubectl("get", "pod", pod, "-o", "jsonpath={.metadata.uid}"))
    (vol,) = (podns.data_dir / "node" / "pods" / f"default_{pod}_{uid}" / "volumes").glob("kube-api-access-*")
    return (vol / "token").read_text()


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_issue_commands_and_lb_in_pod(podns: Podns, version: str) -> None:
    k = podns.kubectl
    out(k("apply", "-f", str(REPO / "examples" / "db-headless.yaml"), version=version))
    # the issue's block, literally
    assert out(k("create", "serviceaccount", "app", version=version)).strip() == "serviceaccount/app created"
    out(k("create", "role", "endpoint-reader", "--verb=get,list,watch",
          "--resource=endpointslices.discovery.k8s.io", version=version))
    out(k("create", "rolebinding", "app-reads", "--role=endpoint-reader", "--serviceaccount=default:app",
          version=version))

    def can_i(*args: str) -> str:
        p = k("auth", "can-i", *args, version=version)
        assert p.returncode in (0, 1), p.stderr
        return p.stdout.strip()

    wait_until(lambda: can_i("watch", "endpointslices", "--as=system:serviceaccount:default:app") == "yes",
               10, "the binding to take effect")
    assert can_i("list", "secrets", "--as=system:serviceaccount:default:app") == "no"
    out(k("apply", "-f", str(REPO / "examples" / "lb-in-pod.yaml"), version=version))
    token = out(k("create", "token", "app", "--duration=10m", version=version)).strip()

    # the script token: 10 minutes, reads EndpointSlices, not Secrets
    part = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert claims["exp"] - claims["iat"] == 600
    assert claims["sub"] == "system:serviceaccount:default:app"
    assert api_get(podns, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", token)[0] == 200
    status, body = api_get(podns, "/api/v1/namespaces/default/secrets", token)
    assert status == 403
    assert body["message"] == ('secrets is forbidden: User "system:serviceaccount:default:app" cannot list '
                               'resource "secrets" in API group "" in the namespace "default"')

    # the pod balances over every db pod through lb.Watch() with no arguments
    def served() -> set[str]:
        logs = k("logs", "lb-in-pod", version=version).stdout
        return {line.split()[2].rstrip(":") for line in logs.splitlines() if line.startswith("served by")}

    wait_until(lambda: served() >= {"db-0", "db-1", "db-2"}, 150, "lb-in-pod to reach db-0, db-1, db-2",
               step=0.5)
    logs = k("logs", "lb-in-pod", version=version).stdout
    assert "Traceback" not in logs and "HTTP/1.0 200 OK" in logs

    # the pod's own token: same rights; once the pod is deleted, refused
    ptoken = pod_token(podns, "lb-in-pod")
    ptoken_claims = json.loads(base64.urlsafe_b64decode(ptoken.split(".")[1] + "=="))
    assert ptoken_claims["kubernetes.io"]["pod"]["name"] == "lb-in-pod"
    assert api_get(podns, "/api/v1/namespaces/default/secrets", ptoken)[0] == 403
    assert api_get(podns, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", ptoken)[0] == 200
    out(k("delete", "pod", "lb-in-pod", "--wait=true", version=version))
    wait_until(lambda: api_get(podns, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
                               ptoken)[0] == 401, 30, "the deleted pod's token to be refused")
    assert api_get(podns, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", token)[0] == 200

    bad = k("get", "pods", f"--token={token[:-4]}AAAA", "--kubeconfig=/dev/null",
            f"--server={podns.api_url}", f"--certificate-authority={podns.ca_path}", version=version)
    assert bad.returncode == 1 and "Unauthorized" in bad.stderr, bad.stderr


PYCLIENT_POD = """
apiVersion: v1
kind: Pod
metadata: {name: pyclient}
spec:
  serviceAccountName: app
  restartPolicy: Never
  containers:
    - name: c
      image: python:3.11
      command: ["python3", "-c"]
      args:
        - |
          import os
          from kubernetes import client, config
          config.load_incluster_config()   # the standard path, KUBERNETES_SERVICE_HOST/PORT
          print("env", os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
          slices = client.DiscoveryV1Api().list_namespaced_endpoint_slice("default")
          print("endpointslices", ",".join(sorted(s.metadata.name for s in slices.items)))
          try:
              client.CoreV1Api().list_namespaced_secret("default")
          except client.ApiException as exc:
              print("secrets", exc.status)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_official_client_in_cluster_in_network_namespace(start_podns: Callable[..., Podns]) -> None:
    """given namespace mode (the pod has its own network and mount namespaces), the official
    Python client's load_incluster_config() finds the token at the standard path and reaches the
    API server through 127.0.0.1 in the pod's namespace; its account reads EndpointSlices, not
    Secrets."""
    podns = start_podns("--pod-network", "netns", "--container-runtime", "process",
                        "--service-cidr", free_service_cidr())  # other clusters run here
    k = podns.kubectl
    out(k("create", "serviceaccount", "app"))
    out(k("create", "role", "endpoint-reader", "--verb=get,list,watch",
          "--resource=endpointslices.discovery.k8s.io"))
    out(k("create", "rolebinding", "app-reads", "--role=endpoint-reader", "--serviceaccount=default:app"))
    out(k("apply", "-f", "-", input=PYCLIENT_POD))

    def finished() -> str:
        phase = k("get", "pod", "pyclient", "-o", "jsonpath={.status.phase}").stdout
        return phase if phase in ("Succeeded", "Failed") else ""

    phase = wait_until(finished, 90, "the client pod to finish", step=0.5)
    logs = k("logs", "pyclient").stdout
    assert phase == "Succeeded", logs
    lines = logs.splitlines()
    assert lines[0].startswith("env 127.0.0.1 "), logs
    # the only slice in `default` is the API server's own (Service `kubernetes`)
    assert "endpointslices kubernetes" in lines and "secrets 403" in lines, logs
