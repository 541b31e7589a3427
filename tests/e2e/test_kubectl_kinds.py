"""Every served kind through real kubectl 1.33 and 1.27: `get` columns as Kubernetes prints
them, `api-resources`, `explain`, apply with server-side validation (OpenAPI v3 for 1.33,
protobuf v2 for 1.27) and 422 field paths in kubectl's error output.

Only the API server runs (no controllers, node agent or DNS), so what is read back is exactly
what the API server's per-kind code made of the applied objects.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import Podns

OBJECTS = str(Path(__file__).resolve().parent / "kinds" / "objects.yaml")
VERSIONS = ["1.33", "1.27"]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120),
              pytest.mark.podns_args("--no-controllers", "--no-node", "--no-dns")]


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def header(out: str) -> list[str]:
    """The column titles of kubectl's first header line (titles may contain one space)."""
    line = out.splitlines()[0]
    return [t.strip() for t in line.split("  ") if t.strip()]


def row(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.split()[0] == name)


@pytest.fixture(scope="module")
def cluster(podns_module: Podns) -> Podns:
    """The module's API server with one object of every kind applied (kubectl 1.33, Strict)."""
    out = ok(podns_module.kubectl("apply", "-f", OBJECTS))
    assert "namespace/kinds created" in out and "event/web-0.started created" in out
    return podns_module


@pytest.mark.parametrize("version", VERSIONS)
def test_api_resources(cluster: Podns, version: str) -> None:
    """`kubectl api-resources` lists every kind with Kubernetes' short names and scope."""
    out = ok(cluster.kubectl("api-resources", "--no-headers", version=version))
    got = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert got["pods"] == ["po", "v1", "true", "Pod"]
    assert got["services"] == ["svc", "v1", "true", "Service"]
    assert got["statefulsets"] == ["sts", "apps/v1", "true", "StatefulSet"]
    assert got["deployments"] == ["deploy", "apps/v1", "true", "Deployment"]
    assert got["replicasets"] == ["rs", "apps/v1", "true", "ReplicaSet"]
    assert got["jobs"] == ["batch/v1", "true", "Job"]
    assert got["cronjobs"] == ["cj", "batch/v1", "true", "CronJob"]
    assert got["daemonsets"] == ["ds", "apps/v1", "true", "DaemonSet"]
    assert got["poddisruptionbudgets"] == ["pdb", "policy/v1", "true", "PodDisruptionBudget"]
    assert got["nodes"] == ["no", "v1", "false", "Node"]
    assert got["endpointslices"] == ["discovery.k8s.io/v1", "true", "EndpointSlice"]
    assert got["leases"] == ["coordination.k8s.io/v1", "true", "Lease"]
    assert got["rolebindings"] == ["rbac.authorization.k8s.io/v1", "true", "RoleBinding"]
    assert got["clusterroles"] == ["rbac.authorization.k8s.io/v1", "false", "ClusterRole"]
    assert got["selfsubjectaccessreviews"] == ["authorization.k8s.io/v1", "false",
                                               "SelfSubjectAccessReview"]
    assert got["selfsubjectreviews"] == ["authentication.k8s.io/v1", "false", "SelfSubjectReview"]
    assert got["runtimeclasses"] == ["node.k8s.io/v1", "false", "RuntimeClass"]
    assert got["localsubjectaccessreviews"] == ["authorization.k8s.io/v1", "true",
                                                "LocalSubjectAccessReview"]
    assert got["selfsubjectrulesreviews"] == ["authorization.k8s.io/v1", "false",
                                              "SelfSubjectRulesReview"]
    assert got["horizontalpodautoscalers"] == ["hpa", "autoscaling/v2", "true", "HorizontalPodAutoscaler"]
    assert got["ingresses"] == ["ing", "networking.k8s.io/v1", "true", "Ingress"]
    assert got["ingressclasses"] == ["networking.k8s.io/v1", "false", "IngressClass"]
    assert got["persistentvolumes"] == ["pv", "v1", "false", "PersistentVolume"]
    assert got["replicationcontrollers"] == ["rc", "v1", "true", "ReplicationController"]
    assert len(got) == 35


@pytest.mark.parametrize("version", VERSIONS)
def test_aggregated_discovery(cluster: Podns, version: str) -> None:
    """With a cold cache, a command needs exactly two discovery requests (/api and /apis):
    aggregated discovery v2 (1.33) or v2beta1 (1.27) is served, no per-group fallback."""
    cache = f"--cache-dir={cluster.workdir / ('cold-' + version)}"
    p = cluster.kubectl(cache, "-v=6", "get", "pods", "-n", "kinds", version=version)
    ok(p)
    gets = [line for line in p.stderr.splitlines() if "GET" in line and "200" in line]
    discovery = [line for line in gets if "/api?" in line or "/apis?" in line or ("/apis/" in line
                 and "/namespaces/" not in line)]
    assert len(discovery) == 2, gets


@pytest.mark.parametrize("version", VERSIONS)
def test_describe(cluster: Podns, version: str) -> None:
    """`kubectl describe` works for the kinds it has describers for."""
    for args, expect in [(("pod", "web-0"), "Containers:"), (("svc", "web"), "TargetPort:"),
                         (("endpointslice", "web-abc"), "AddressType:"), (("pvc", "data"), "StorageClass:"),
                         (("lease", "leader"), "Holder Identity:"), (("cm", "settings"), "Data")]:
        out = ok(cluster.kubectl("describe", *args, "-n", "kinds", version=version))
        assert expect in out, (args, out)
    assert "Roles:" in ok(cluster.kubectl("describe", "node", "node-a", version=version))


@pytest.mark.parametrize("version", VERSIONS)
def test_get_columns(cluster: Podns, version: str) -> None:
    """`kubectl get` of each kind prints Kubernetes' columns and cells."""
    def get(*args: str) -> str:
        return ok(cluster.kubectl("get", *args, "-n", "kinds", version=version))

    pods = get("pods", "-o", "wide")
    assert header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED NODE",
                            "READINESS GATES"]
    assert row(pods, "web-0").split()[1:4] == ["0/1", "Pending", "0"]
    svc = get("svc", "-o", "wide")
    assert header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    web = row(svc, "web").split()
    assert web[1] == "ClusterIP" and web[2].startswith("127.96.") and web[3:5] == ["<none>", "80/TCP"]
    assert row(svc, "web-np").split()[4] == "80:30080/TCP"
    assert row(svc, "upstream").split()[1:4] == ["ExternalName", "<none>", "db.example.com"]
    slices = get("endpointslices")
    assert header(slices) == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert row(slices, "web-abc").split()[1:4] == ["IPv4", "8080", "10.244.0.5"]
    assert row(get("endpoints"), "web").split()[1] == "10.244.0.5:8080"
    assert row(get("cm"), "settings").split()[1] == "2"
    assert row(get("secrets"), "creds").split()[1:3] == ["Opaque", "1"]
    pvc = get("pvc")
    assert header(pvc)[:6] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS"]
    assert row(pvc, "data").split()[1:3] == ["Pending", "local"]
    assert row(get("leases"), "leader").split()[1] == "controller-1"
    events = get("events")
    assert header(events) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "Normal" in events and "pod/web-0" in events and "Started container web" in events
    nodes = ok(cluster.kubectl("get", "nodes", version=version))
    assert header(nodes) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert row(nodes, "node-a").split()[1:3] == ["Ready", "worker"]
    ns = ok(cluster.kubectl("get", "ns", "kinds", version=version))
    assert header(ns) == ["NAME", "STATUS", "AGE"] and row(ns, "kinds").split()[1] == "Active"


def test_get_all_namespaces_and_categories(cluster: Podns) -> None:
    """`get all -A` uses the `all` category and the row objects' namespaces."""
    out = ok(cluster.kubectl("get", "all", "-A"))
    assert "pod/web-0" in out and "service/web" in out
    assert all(line.split()[0] == "NAMESPACE" or line.split()[0] in ("kinds", "default")
               for line in out.splitlines() if line.strip())


def test_defaults_visible_to_clients(cluster: Podns) -> None:
    """The server's defaults come back in `-o json`: Secret data, pod spec and status."""
    pod = json.loads(ok(cluster.kubectl("get", "pod", "web-0", "-n", "kinds", "-o", "json")))
    assert pod["spec"]["restartPolicy"] == "Always" and pod["status"]["phase"] == "Pending"
    assert pod["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] == 10
    secret = json.loads(ok(cluster.kubectl("get", "secret", "creds", "-n", "kinds", "-o", "json")))
    assert secret["data"] == {"password": "aHVudGVyMg=="} and "stringData" not in secret


@pytest.mark.parametrize("version", VERSIONS)
def test_explain(cluster: Podns, version: str) -> None:
    """`kubectl explain` reads the OpenAPI v3 schemas."""
    out = ok(cluster.kubectl("explain", "svc.spec", version=version))
    assert "clusterIP" in out and "publishNotReadyAddresses" in out and "ports" in out
    out = ok(cluster.kubectl("explain", "statefulset.spec.updateStrategy", version=version))
    assert "rollingUpdate" in out


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_validation_and_field_paths(cluster: Podns, version: str) -> None:
    """Default-validated apply reaches the server (v3 for 1.33, protobuf v2 for 1.27): unknown
    fields are refused with Kubernetes' message and invalid fields with their paths."""
    typo = ('{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"t","namespace":"kinds"},'
            '"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},'
            '"spec":{"containers":[{"name":"c","image":"x","imagePullPolcy":"Always"}]}}}}')
    p = cluster.kubectl("apply", "-f", "-", input=typo, version=version)
    assert p.returncode != 0
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in p.stderr
    bad = ('{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad","namespace":"kinds"},'
           '"spec":{"type":"NodePort","ports":[{"port":70000,"name":"a"},'
           '{"port":81,"name":"a","nodePort":1}]}}')
    p = cluster.kubectl("apply", "-f", "-", input=bad, version=version)
    assert p.returncode != 0 and 'The Service "bad" is invalid' in p.stderr
    assert "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive" in p.stderr
    assert 'spec.ports[1].name: Duplicate value: "a"' in p.stderr
    mismatch = typo.replace(',"imagePullPolcy":"Always"', "")
    mismatch = mismatch.replace('"labels":{"a":"b"}', '"labels":{"a":"c"}')
    p = cluster.kubectl("apply", "-f", "-", input=mismatch, version=version)
    assert "spec.template.metadata.labels" in p.stderr
    assert "`selector` does not match template `labels`" in p.stderr


def test_cluster_ip_immutable_and_pod_update_rules(cluster: Podns) -> None:
    """Changing a Service's clusterIP or a Pod's restartPolicy is refused with Kubernetes' messages;
    changing a Pod's image is allowed."""
    p = cluster.kubectl("patch", "svc", "web", "-n", "kinds", "-p",
                        '{"spec":{"clusterIP":"127.96.0.200"}}')
    assert p.returncode != 0
    assert 'spec.clusterIP: Invalid value: "127.96.0.200": field is immutable' in p.stderr
    p = cluster.kubectl("patch", "pod", "web-0", "-n", "kinds", "-p",
                        '{"spec":{"restartPolicy":"Never"}}')
    assert p.returncode != 0 and "pod updates may not change fields other than" in p.stderr
    ok(cluster.kubectl("set", "image", "pod/web-0", "-n", "kinds", "web=busybox:1.37"))


@pytest.mark.parametrize("version", VERSIONS)
def test_runtime_class(cluster: Podns, version: str) -> None:
    """RuntimeClass (node.k8s.io/v1, cluster-scoped): HANDLER column; handler validated as a DNS
    label and immutable; a pod naming a missing class is refused by admission (403, Kubernetes'
    message), one naming an existing class gets its nodeSelector merged and may not change it."""
    out = ok(cluster.kubectl("get", "runtimeclass", version=version))
    assert header(out) == ["NAME", "HANDLER", "AGE"]
    assert row(out, "host-process").split()[1] == "process"
    bad = '{"apiVersion":"node.k8s.io/v1","kind":"RuntimeClass","metadata":{"name":"bad-%s"},"handler":"%s"}'
    p = cluster.kubectl("apply", "-f", "-", input=bad % (version, "Not_A_Label"), version=version)
    assert p.returncode != 0 and f'The RuntimeClass "bad-{version}" is invalid' in p.stderr
    assert 'handler: Invalid value: "Not_A_Label": a lowercase RFC 1123 label' in p.stderr
    p = cluster.kubectl("patch", "runtimeclass", "host-process", "-p", '{"handler":"podman"}',
                        version=version)
    assert p.returncode != 0 and 'handler: Invalid value: "podman": field is immutable' in p.stderr
    pod = ('{"apiVersion":"v1","kind":"Pod","metadata":{"name":"rc-%s","namespace":"kinds"},'
           '"spec":{"runtimeClassName":"%s","containers":[{"name":"c","image":"x"}]}}')
    p = cluster.kubectl("apply", "-f", "-", input=pod % (version, "missing"), version=version)
    assert p.returncode != 0
    assert (f'pods "rc-{version}" is forbidden: pod rejected: RuntimeClass "missing" not found'
            in p.stderr), p.stderr
    p = cluster.kubectl("apply", "-f", "-", input=pod % (version, "Bad_Name"), version=version)
    assert p.returncode != 0 and 'spec.runtimeClassName: Invalid value: "Bad_Name"' in p.stderr
    ok(cluster.kubectl("apply", "-f", "-", input=pod % (version, "host-process"), version=version))
    got = json.loads(ok(cluster.kubectl("get", "pod", f"rc-{version}", "-n", "kinds", "-o", "json")))
    assert got["spec"]["runtimeClassName"] == "host-process"
    assert got["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}  # the class's scheduling
    p = cluster.kubectl("patch", "pod", f"rc-{version}", "-n", "kinds", "-p",
                        '{"spec":{"runtimeClassName":"other"}}', version=version)
    assert p.returncode != 0 and "pod updates may not change fields other than" in p.stderr


def test_python_client_decodes_every_kind(cluster: Podns) -> None:
    """The official Python client (strict pydantic models) lists every kind and reads a new
    StatefulSet and its Scale, so every field it requires is present."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(cluster.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns = "kinds"
    lists = [core.list_namespaced_pod(ns), core.list_namespaced_service(ns), core.list_node(),
             core.list_namespaced_event(ns), core.list_namespaced_endpoints(ns),
             core.list_namespaced_config_map(ns), core.list_namespaced_secret(ns),
             core.list_namespaced_persistent_volume_claim(ns), core.list_namespace(),
             client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(ns),
             client.CoordinationV1Api(api).list_namespaced_lease(ns),
             client.NodeV1Api(api).list_runtime_class()]
    assert all(len(r.items) >= 1 for r in lists)
    body = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="py"),
        spec=client.V1StatefulSetSpec(
            selector=client.V1LabelSelector(match_labels={"a": "py"}), service_name="py",
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"a": "py"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]))))
    created = apps.create_namespaced_stateful_set(ns, body)
    assert created.status.replicas == 0 and created.spec.update_strategy.type == "RollingUpdate"
    assert apps.read_namespaced_stateful_set_scale("py", ns).status.selector == "a=py"
    assert len(apps.list_namespaced_controller_revision(ns).items) == 0
    api.close()
