"""Create, get, list, update and delete through the real HTTP server and SQLite store."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api

PODS = "/api/v1/namespaces/default/pods"
SVCS = "/api/v1/namespaces/default/services"
STS = "/apis/apps/v1/namespaces/default/statefulsets"


def pod(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


async def test_create_sets_server_fields_and_get_returns_them(api: Api) -> None:
    """Given a new pod, create answers 201 with uid, creationTimestamp, generation 1, rv."""
    r = await api.post(PODS, pod("web-0", {"app": "web"}))
    assert r.status == 201
    md = r.body["metadata"]
    assert md["uid"] and md["creationTimestamp"].endswith("Z")
    assert md["generation"] == 1 and int(md["resourceVersion"]) > 0
    assert md["namespace"] == "default"
    got = await api.get(f"{PODS}/web-0")
    assert got.status == 200 and got.body == r.body


async def test_create_without_content_type_and_generate_name(api: Api) -> None:
    """The Python client sends no Content-Type; generateName gets a 5-character suffix."""
    body = pod("")
    body["metadata"] = {"generateName": "job-"}
    r = await api.post(PODS, body, content_type=None)
    assert r.status == 201
    name = r.body["metadata"]["name"]
    assert name.startswith("job-") and len(name) == len("job-") + 5


async def test_create_twice_is_already_exists(api: Api) -> None:
    """A second create of the same name is 409 AlreadyExists worded as Kubernetes."""
    await api.post(PODS, pod("a"))
    r = await api.post(PODS, pod("a"))
    assert r.status == 409 and r.body["reason"] == "AlreadyExists"
    assert r.body["message"] == 'pods "a" already exists'
    assert r.body["details"] == {"name": "a", "kind": "pods"}


async def test_dry_run_create_stores_nothing(api: Api) -> None:
    """dryRun=All returns the object as it would be stored but stores nothing."""
    r = await api.post(PODS + "?dryRun=All", pod("ghost"))
    assert r.status == 201 and r.body["metadata"]["uid"]
    assert (await api.get(f"{PODS}/ghost")).status == 404


async def test_namespace_must_exist(api: Api) -> None:
    """Creating in a missing namespace is 404 `namespaces "nope" not found`."""
    r = await api.post("/api/v1/namespaces/nope/pods", pod("a"))
    assert r.status == 404
    assert r.body["message"] == 'namespaces "nope" not found'


async def test_initial_namespaces_exist(api: Api) -> None:
    """default, kube-system, kube-public and kube-node-lease exist at start."""
    r = await api.get("/api/v1/namespaces")
    names = {i["metadata"]["name"] for i in r.body["items"]}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}


async def test_update_with_stale_resource_version_conflicts(api: Api) -> None:
    """PUT with an old resourceVersion is 409 Conflict; with the current one it succeeds."""
    created = (await api.post(PODS, pod("a"))).body
    fresh = dict(created, metadata=dict(created["metadata"], labels={"v": "1"}))
    r = await api.put(f"{PODS}/a", fresh)
    assert r.status == 200 and r.body["metadata"]["labels"] == {"v": "1"}
    stale = dict(created, metadata=dict(created["metadata"], labels={"v": "2"}))
    r = await api.put(f"{PODS}/a", stale)
    assert r.status == 409 and r.body["reason"] == "Conflict"
    assert r.body["message"].startswith('Operation cannot be fulfilled on pods "a": the object '
                                        "has been modified")


async def test_generation_bumps_on_spec_change_only(api: Api) -> None:
    """generation follows spec changes, not metadata or status changes."""
    created = (await api.post(STS, {"metadata": {"name": "db"}, "spec": {"replicas": 1}})).body
    assert created["status"] == {"replicas": 0}
    r = await api.patch(f"{STS}/db", {"metadata": {"labels": {"a": "b"}}})
    assert r.body["metadata"]["generation"] == 1
    r = await api.patch(f"{STS}/db", {"spec": {"replicas": 2}})
    assert r.body["metadata"]["generation"] == 2
    r = await api.patch(f"{STS}/db/status", {"status": {"replicas": 2}})
    assert r.body["metadata"]["generation"] == 2 and r.body["status"]["replicas"] == 2
    # the main resource ignores status; /status ignores spec
    r = await api.patch(f"{STS}/db", {"status": {"replicas": 7}})
    assert r.body["status"]["replicas"] == 2
    r = await api.patch(f"{STS}/db/status", {"spec": {"replicas": 9}})
    assert r.body["spec"]["replicas"] == 2


async def test_scale_subresource(api: Api) -> None:
    """GET/PATCH (merge and strategic)/PUT on /scale speak autoscaling/v1 Scale."""
    await api.post(STS, {"metadata": {"name": "db"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "db"}}}})
    r = await api.get(f"{STS}/db/scale")
    assert r.body["kind"] == "Scale" and r.body["apiVersion"] == "autoscaling/v1"
    assert r.body["spec"] == {"replicas": 3}
    assert r.body["status"] == {"replicas": 0, "selector": "app=db"}
    for ptype, n in (("merge", 5), ("strategic", 6)):
        r = await api.patch(f"{STS}/db/scale", {"spec": {"replicas": n}}, ptype)
        assert r.status == 200 and r.body["spec"]["replicas"] == n
    scale = (await api.get(f"{STS}/db/scale")).body
    scale["spec"]["replicas"] = 1
    r = await api.put(f"{STS}/db/scale", scale)
    assert r.status == 200
    sts = (await api.get(f"{STS}/db")).body
    assert sts["spec"]["replicas"] == 1 and sts["metadata"]["generation"] == 4


async def test_binding_sets_node_name_once(api: Api) -> None:
    """POST pods/x/binding assigns the node; a second binding is a 409."""
    await api.post(PODS, pod("a"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "a"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}}
    r = await api.post(f"{PODS}/a/binding", binding)
    assert r.status == 201
    assert (await api.get(f"{PODS}/a")).body["spec"]["nodeName"] == "node-1"
    r = await api.post(f"{PODS}/a/binding", binding)
    assert r.status == 409


async def test_list_with_label_and_field_selectors(api: Api) -> None:
    """Set-based label selectors and field selectors filter lists."""
    for name, labels in (("a", {"app": "db", "tier": "x"}), ("b", {"app": "web"}),
                         ("c", {"app": "db"})):
        await api.post(PODS, pod(name, labels))

    async def names(query: str) -> list[str]:
        r = await api.get(f"{PODS}?{query}")
        assert r.status == 200, r.body
        return [i["metadata"]["name"] for i in r.body["items"]]

    assert await names("labelSelector=app%3Ddb") == ["a", "c"]
    assert await names("labelSelector=app+in+%28web%2Cdb%29%2C%21tier") == ["b", "c"]
    assert await names("labelSelector=app%21%3Ddb") == ["b"]
    assert await names("fieldSelector=metadata.name%3Db") == ["b"]
    assert await names("fieldSelector=metadata.name%21%3Db&labelSelector=tier") == ["a"]
    r = await api.get(f"{PODS}?fieldSelector=spec.bogus%3D1")
    assert r.status == 400
    r = await api.get(f"{PODS}?labelSelector=a%20in%20(")
    assert r.status == 400


async def test_list_pagination_with_limit_and_continue(api: Api) -> None:
    """limit/continue pages through a list at one resourceVersion."""
    for i in range(7):
        await api.post(PODS, pod(f"p{i}"))
    seen: list[str] = []
    token = ""
    rvs = set()
    while True:
        r = await api.get(f"{PODS}?limit=3" + (f"&continue={token}" if token else ""))
        seen += [i["metadata"]["name"] for i in r.body["items"]]
        rvs.add(r.body["metadata"]["resourceVersion"])
        if "continue" not in r.body["metadata"]:
            break
        token = r.body["metadata"]["continue"]
        await api.post(PODS, pod(f"z{len(seen)}"))  # later writes are not in this list
    assert seen == [f"p{i}" for i in range(7)]
    assert len(rvs) == 1
    assert (await api.get(f"{PODS}?limit=3&continue=garbage")).status == 400


async def test_all_namespaces_list(api: Api) -> None:
    """/api/v1/pods lists pods of every namespace."""
    await api.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
    await api.post(PODS, pod("a"))
    await api.post("/api/v1/namespaces/other/pods", pod("b"))
    r = await api.get("/api/v1/pods")
    assert sorted(i["metadata"]["name"] for i in r.body["items"]) == ["a", "b"]


async def test_delete_returns_object_or_status_and_preconditions(api: Api) -> None:
    """Pods/services return the deleted object, other kinds a Success Status; a wrong uid
    precondition is a 409."""
    created = (await api.post(PODS, pod("a"))).body
    r = await api.delete(f"{PODS}/a", {"preconditions": {"uid": "wrong"}})
    assert r.status == 409 and "Precondition failed" in r.body["message"]
    r = await api.delete(f"{PODS}/a", {"preconditions": {"uid": created["metadata"]["uid"]}})
    assert r.status == 200 and r.body["kind"] == "Pod"
    assert (await api.get(f"{PODS}/a")).status == 404
    await api.post(STS, {"metadata": {"name": "db"}, "spec": {}})
    r = await api.delete(f"{STS}/db", {"propagationPolicy": "Background"})
    assert r.status == 200 and r.body["kind"] == "Status" and r.body["status"] == "Success"


async def test_graceful_delete_and_finalizers(api: Api) -> None:
    """A scheduled pod gets deletionTimestamp (200, still there) and goes on a grace-0 delete;
    an object with a finalizer stays until the finalizer is removed."""
    await api.post(PODS, pod("a", nodeName="node-1"))
    r = await api.delete(f"{PODS}/a")
    assert r.status == 200
    assert r.body["metadata"]["deletionTimestamp"]
    assert r.body["metadata"]["deletionGracePeriodSeconds"] == 30
    r = await api.delete(f"{PODS}/a?gracePeriodSeconds=0")
    assert r.status == 200
    assert (await api.get(f"{PODS}/a")).status == 404

    body = {"metadata": {"name": "cm", "finalizers": ["example.com/hold"]}, "data": {}}
    await api.post("/api/v1/namespaces/default/configmaps", body)
    r = await api.delete("/api/v1/namespaces/default/configmaps/cm")
    assert r.status == 200 and r.body["metadata"]["deletionTimestamp"]
    r = await api.patch("/api/v1/namespaces/default/configmaps/cm",
                        {"metadata": {"finalizers": None}})
    assert r.status == 200
    assert (await api.get("/api/v1/namespaces/default/configmaps/cm")).status == 404


async def test_delete_collection_with_selector(api: Api) -> None:
    """DELETE on a collection removes only the selected objects."""
    for name, app in (("a", "x"), ("b", "x"), ("c", "y")):
        await api.post(PODS, pod(name, {"app": app}))
    r = await api.delete(f"{PODS}?labelSelector=app%3Dx")
    assert r.status == 200 and len(r.body["items"]) == 2
    left = (await api.get(PODS)).body["items"]
    assert [i["metadata"]["name"] for i in left] == ["c"]


async def test_deleting_a_namespace_removes_its_contents(api: Api) -> None:
    """A deleted namespace goes Terminating, its objects are deleted, then it disappears;
    creating in it meanwhile is 403."""
    import asyncio

    await api.post("/api/v1/namespaces", {"metadata": {"name": "tmp"}})
    await api.post("/api/v1/namespaces/tmp/pods", pod("a"))
    await api.post("/api/v1/namespaces/tmp/services", {"metadata": {"name": "s"}, "spec": {}})
    cm = {"metadata": {"name": "held", "finalizers": ["x/y"]}}
    await api.post("/api/v1/namespaces/tmp/configmaps", cm)
    r = await api.delete("/api/v1/namespaces/tmp")
    assert r.status == 200 and r.body["status"]["phase"] == "Terminating"
    r = await api.post("/api/v1/namespaces/tmp/pods", pod("b"))
    assert r.status == 403
    for _ in range(100):
        if (await api.get("/api/v1/namespaces/tmp/pods/a")).status == 404:
            break
        await asyncio.sleep(0.05)
    assert (await api.get("/api/v1/namespaces/tmp/services/s")).status == 404
    assert (await api.get("/api/v1/namespaces/tmp")).status == 200  # held by the configmap
    await api.patch("/api/v1/namespaces/tmp/configmaps/held", {"metadata": {"finalizers": []}})
    for _ in range(100):
        if (await api.get("/api/v1/namespaces/tmp")).status == 404:
            break
        await asyncio.sleep(0.05)
    assert (await api.get("/api/v1/namespaces/tmp")).status == 404


@pytest.mark.parametrize("ptype", ["merge", "strategic", "json", "apply"])
async def test_patch_types(api: Api, ptype: str) -> None:
    """Each patch content type changes a label on a service."""
    await api.post(SVCS, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    body: Any = {"metadata": {"labels": {"tier": "data"}}}
    if ptype == "json":
        body = [{"op": "add", "path": "/metadata/labels", "value": {"tier": "data"}}]
    query = "?fieldManager=test" if ptype == "apply" else ""
    r = await api.patch(f"{SVCS}/s{query}", body, ptype)
    assert r.status == 200, r.body
    assert r.body["metadata"]["labels"] == {"tier": "data"}
    assert r.body["spec"]["ports"] == [{"port": 80}]


async def test_server_side_apply_creates_then_merges(api: Api) -> None:
    """An apply patch on a missing object creates it (201), then merges (200)."""
    body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80, "name": "http"}]}}
    r = await api.patch(f"{SVCS}/s?fieldManager=kubectl&force=false", body, "apply")
    assert r.status == 201
    assert r.body["metadata"]["managedFields"][0]["manager"] == "kubectl"
    body["spec"]["ports"][0]["targetPort"] = 8080
    r = await api.patch(f"{SVCS}/s?fieldManager=kubectl", body, "apply")
    assert r.status == 200 and r.body["spec"]["ports"][0]["targetPort"] == 8080
    assert {(m["manager"], m["operation"]) for m in r.body["metadata"]["managedFields"]} == {
        ("kubectl", "Apply")}


async def test_noop_update_keeps_resource_version(api: Api) -> None:
    """An update that changes nothing (but managedFields) writes nothing: same rv, no event."""
    created = (await api.post(PODS, pod("a", {"x": "1"}))).body
    rv = created["metadata"]["resourceVersion"]
    r = await api.patch(f"{PODS}/a?fieldManager=other", {"metadata": {"labels": {"x": "1"}}})
    assert r.status == 200 and r.body["metadata"]["resourceVersion"] == rv
    r = await api.put(f"{PODS}/a", created)
    assert r.status == 200 and r.body["metadata"]["resourceVersion"] == rv
    r = await api.patch(f"{PODS}/a", {"metadata": {"labels": {"x": "2"}}})
    assert int(r.body["metadata"]["resourceVersion"]) > int(rv)
