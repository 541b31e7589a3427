"""Pod spec paths rejected at validation with kube-apiserver's messages and field paths: a
`subPath` that is absolute or climbs out with `..`, configMap/secret `items[].path` leaving the
volume (or starting with `..`), file modes past 0777, and a `claimName` that is not a PVC name."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import Api

PODS = "/api/v1/namespaces/default/pods"


def pod(name: str, *, mounts: list[dict[str, Any]] | None = None, volumes: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x", "volumeMounts": mounts or []}],
                     "volumes": volumes or []}}


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    ("subpath-dotdot", pod("a", mounts=[{"name": "v", "mountPath": "/m", "subPath": "../../etc"}],
                           volumes=[{"name": "v", "emptyDir": {}}]),
     "spec.containers[0].volumeMounts[0].subPath", "must not contain '..'"),
    ("subpath-absolute", pod("b", mounts=[{"name": "v", "mountPath": "/m", "subPath": "/etc"}],
                             volumes=[{"name": "v", "emptyDir": {}}]),
     "spec.containers[0].volumeMounts[0].subPath", "must be a relative path"),
    ("items-dotdot", pod("c", volumes=[{"name": "v", "secret": {"secretName": "s", "items": [
        {"key": "k", "path": "a/../../x"}]}}]),
     "spec.volumes[0].secret.items[0].path", "must not contain '..'"),
    ("items-absolute", pod("d", volumes=[{"name": "v", "configMap": {"name": "cm", "items": [
        {"key": "k", "path": "/etc/passwd"}]}}]),
     "spec.volumes[0].configMap.items[0].path", "must be a relative path"),
    ("items-reserved", pod("e", volumes=[{"name": "v", "configMap": {"name": "cm", "items": [
        {"key": "k", "path": "..data"}]}}]),
     "spec.volumes[0].configMap.items[0].path", "must not start with '..'"),
    ("items-mode", pod("f", volumes=[{"name": "v", "secret": {"secretName": "s", "items": [
        {"key": "k", "path": "k", "mode": 0o7777}]}}]),
     "spec.volumes[0].secret.items[0].mode", "must be a number between 0 and 0777 (octal), both inclusive"),
    ("default-mode", pod("g", volumes=[{"name": "v", "secret": {"secretName": "s", "defaultMode": -1}}]),
     "spec.volumes[0].secret.defaultMode", "must be a number between 0 and 0777 (octal), both inclusive"),
    ("claim-slash", pod("h", volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "../../x"}}]),
     "spec.volumes[0].persistentVolumeClaim.claimName", "a lowercase RFC 1123 subdomain"),
]


@pytest.mark.parametrize(("case", "body", "field", "words"), CASES, ids=[c[0] for c in CASES])
async def test_path_escaping_the_volume_is_422(real_api: Api, case: str, body: dict[str, Any],
                                               field: str, words: str) -> None:
    """given a pod whose volume paths would leave their volume, create answers 422 Invalid with
    the field path and Kubernetes' message."""
    r = await real_api.post(PODS, body)
    assert r.status == 422, r.body
    causes = r.body["details"]["causes"]
    assert any(c["field"] == field and words in c["message"] for c in causes), causes


async def test_paths_inside_the_volume_are_accepted(real_api: Api) -> None:
    """given a subPath and items paths below the volume and modes within 0777, create succeeds."""
    body = pod("ok", mounts=[{"name": "v", "mountPath": "/m", "subPath": "pg/main"}],
               volumes=[{"name": "v", "emptyDir": {}},
                        {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400,
                                                 "items": [{"key": "k", "path": "dir/k", "mode": 0o600}]}},
                        {"name": "d", "persistentVolumeClaim": {"claimName": "data-db-0"}}])
    r = await real_api.post(PODS, body)
    assert r.status == 201, r.body
