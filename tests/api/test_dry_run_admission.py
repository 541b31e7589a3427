"""Server-side dry run (`dryRun=All`, `kubectl create --dry-run=server`) passes through admission
as a real create does, and keeps nothing of what admission reserved."""

from __future__ import annotations

from tests.api.conftest import Api

NS = "/api/v1/namespaces/default"


SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
       "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


async def test_dry_run_create_runs_admission_and_keeps_nothing(real_api: Api) -> None:
    """`kubectl create --dry-run=server`: the answer shows what admission would set (a Service's
    clusterIP and ipFamilies); nothing is stored and the cluster IP is free again, so the same IP
    can be asked for by a real create afterwards."""
    r = await real_api.post(f"{NS}/services?dryRun=All", SVC)
    assert r.status == 201, r.body
    ip = r.body["spec"]["clusterIP"]
    assert ip and ip != "None" and r.body["spec"]["ipFamilies"] == ["IPv4"]
    assert (await real_api.get(f"{NS}/services/web")).status == 404
    wanted = {**SVC, "metadata": {"name": "other"}, "spec": {**SVC["spec"], "clusterIP": ip}}
    r = await real_api.post(f"{NS}/services", wanted)
    assert r.status == 201, r.body
    assert r.body["spec"]["clusterIP"] == ip


async def test_dry_run_create_is_refused_as_admission_refuses(real_api: Api) -> None:
    """a pod naming a missing RuntimeClass is refused under dryRun too (403), as for a real create."""
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rc"},
            "spec": {"runtimeClassName": "nope", "containers": [{"name": "c", "image": "x"}]}}
    r = await real_api.post(f"{NS}/pods?dryRun=All", body)
    assert r.status == 403, r.body
    assert 'RuntimeClass "nope" not found' in r.body["message"]
