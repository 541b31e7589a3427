"""StatefulSets: the defaults `kubectl rollout status` and the Python client need, selector
rules, immutable fields and printing."""

from __future__ import annotations

from ._kinds import create, fields, rt, update

STS = rt("StatefulSet", "apps")


def sts(**spec: object) -> dict:
    base: dict = {
        "serviceName": "db-service",
        "selector": {"matchLabels": {"app": "db"}},
        "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "postgres:16"}]},
        },
    }
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"}, "spec": base}


def test_defaults() -> None:
    """Given a minimal StatefulSet, then replicas, policies, strategy, retention and the template
    are defaulted and status starts with replicas 0."""
    out, errs = create(STS, sts())
    assert errs == []
    spec = out["spec"]
    assert spec["replicas"] == 1 and spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert out["status"] == {"replicas": 0, "availableReplicas": 0}


def test_on_delete_strategy_gets_no_rolling_update() -> None:
    """Given updateStrategy OnDelete, then no rollingUpdate block is added."""
    out, errs = create(STS, sts(updateStrategy={"type": "OnDelete"}))
    assert errs == [] and out["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_selector_must_match_template() -> None:
    """Given a selector that does not select the template labels, then 422 on the template labels."""
    _, errs = create(STS, sts(selector={"matchLabels": {"app": "other"}}))
    assert fields(errs) == ["spec.template.metadata.labels"]
    assert errs[0].message.endswith("`selector` does not match template `labels`")
    _, errs = create(STS, sts(selector=None))
    assert "spec.selector" in fields(errs)


def test_template_validation_paths() -> None:
    """Given a bad template, then errors are reported under spec.template.spec."""
    bad = sts()
    bad["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 99999}]
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    bad["spec"]["replicas"] = -1
    _, errs = create(STS, bad)
    assert set(fields(errs)) == {
        "spec.template.spec.containers[0].ports[0].containerPort",
        "spec.template.spec.restartPolicy",
        "spec.replicas",
    }


def test_volume_claim_templates_are_mountable() -> None:
    """Given a claim template, then containers may mount it by name."""
    spec = sts(volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    spec["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/d"}]
    out, errs = create(STS, spec)
    assert errs == []
    assert out["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"] == "Filesystem"


def test_update_rules() -> None:
    """Given a stored StatefulSet, then replicas/template may change but serviceName may not."""
    old, _ = create(STS, sts())
    _, errs = update(STS, sts(replicas=5), old)
    assert errs == []
    assert STS.strategy.spec_changed(update(STS, sts(replicas=5), old)[0], old)
    _, errs = update(STS, sts(serviceName="other"), old)
    assert [(e.field, e.reason) for e in errs] == [("spec", "FieldValueForbidden")]


def test_cells() -> None:
    """Given a StatefulSet with ready replicas, then READY/CONTAINERS/IMAGES read as kubectl's."""
    out, _ = create(STS, sts(replicas=3))
    out["status"]["readyReplicas"] = 2
    assert STS.strategy.cells(out) == ["2/3", "db", "postgres:16"]
