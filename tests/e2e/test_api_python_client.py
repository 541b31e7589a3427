"""The official `kubernetes` Python client against `podns up`: CRUD, selectors, watch, 410."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from .conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60),
              pytest.mark.podns_args("--no-controllers", "--no-node", "--no-dns")]


@pytest.fixture
def api_client(podns_module: Podns) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(podns_module.kubeconfig))
    yield api
    api.close()


def svc(name: str, **labels: str) -> client.V1Service:
    return client.V1Service(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1ServiceSpec(cluster_ip="None", selector={"app": name},
                                  ports=[client.V1ServicePort(name="p", port=80)]))


def test_crud_and_selectors(api_client: client.ApiClient) -> None:
    """create/read/list by label/patch/replace with a stale version (409)/delete."""
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py")))
    created = core.create_namespaced_service("py", svc("a", tier="db"))
    core.create_namespaced_service("py", svc("b", tier="web"))
    assert created.spec.cluster_ip == "None" and created.metadata.uid
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service("py", svc("a"))
    assert exc.value.status == 409

    listed = core.list_namespaced_service("py", label_selector="tier in (db,cache)")
    assert [s.metadata.name for s in listed.items] == ["a"]
    listed = core.list_namespaced_service("py", field_selector="metadata.name!=a")
    assert [s.metadata.name for s in listed.items] == ["b"]

    patched = core.patch_namespaced_service("a", "py", {"metadata": {"labels": {"x": "y"}}})
    assert patched.metadata.labels == {"tier": "db", "x": "y"}
    created.metadata.labels = {"stale": "true"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_service("a", "py", created)
    assert exc.value.status == 409

    core.delete_namespaced_service("a", "py")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_service("a", "py")
    assert exc.value.status == 404


def test_statefulset_scale_with_strategic_patch(api_client: client.ApiClient) -> None:
    """patch_namespaced_stateful_set_scale sends strategic merge patch to /scale."""
    apps = client.AppsV1Api(api_client)
    body = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name="db"),
        spec=client.V1StatefulSetSpec(
            service_name="db", replicas=1,
            selector=client.V1LabelSelector(match_labels={"app": "db"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "db"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="x")]))))
    sts = apps.create_namespaced_stateful_set("default", body)
    assert sts.status.replicas == 0
    scale = apps.patch_namespaced_stateful_set_scale("db", "default", {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3 and scale.status.selector == "app=db"
    assert apps.read_namespaced_stateful_set("db", "default").spec.replicas == 3
    apps.delete_namespaced_stateful_set("db", "default")


def test_watch_and_resumed_watch(api_client: client.ApiClient) -> None:
    """A watch from a list's version sees later changes; a resumed watch continues after the
    last event it saw."""
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="w")))
    rv = core.list_namespaced_config_map("w").metadata.resource_version
    for i in range(3):
        core.create_namespaced_config_map("w", client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm{i}"), data={"i": str(i)}))
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_config_map, "w", resource_version=rv,
                       timeout_seconds=5):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 2:
            last_rv = ev["object"].metadata.resource_version
            w.stop()
    assert seen == [("ADDED", "cm0"), ("ADDED", "cm1")]
    core.delete_namespaced_config_map("cm0", "w")
    resumed = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "w", resource_version=last_rv,
                       timeout_seconds=5):
        resumed.append((ev["type"], ev["object"].metadata.name))
        if len(resumed) == 2:
            w.stop()
    assert resumed == [("ADDED", "cm2"), ("DELETED", "cm0")]


def test_watch_after_restart_from_old_version_is_410(start_podns: object) -> None:
    """After a restart the watch history is gone: a watch from an old version gets 410, and a
    fresh list+watch works; state and credentials survive the restart."""
    podns = start_podns("--no-controllers", "--no-node", "--no-dns")  # type: ignore[operator]
    api = config.new_client_from_config(config_file=str(podns.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="before")))
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    token = podns.admin_token
    api.close()
    podns.restart()
    assert podns.admin_token == token
    api = config.new_client_from_config(config_file=str(podns.kubeconfig))
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="after")))
    with pytest.raises(ApiException) as exc:
        for _ev in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                        resource_version=str(int(old_rv) - 1),
                                        timeout_seconds=5):
            pass
    assert exc.value.status == 410
    names = [c.metadata.name for c in core.list_namespaced_config_map("default").items]
    assert names == ["after", "before"]
    api.close()
