"""Ingress, IngressClass (networking.k8s.io/v1) and HorizontalPodAutoscaler (autoscaling/v2,
stored, and autoscaling/v1, converted): defaults, validation paths and messages, cells, the
v1 <-> v2 conversion, and the version order discovery advertises."""

from __future__ import annotations

from podns.api.discovery import apidiscovery
from podns.api.resources import horizontalpodautoscaler as hpa
from podns.api.resources.registry import REGISTRY, version_priority

from ._kinds import create, fields, update

Obj = dict


def ingress(**spec: object) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": spec}


def backend(name: str = "web", **port: object) -> Obj:
    return {"service": {"name": name, "port": port or {"number": 80}}}


def test_ingress_defaults_validation_and_cells() -> None:
    """Given Ingresses, then they need a default backend or rules, a pathType per path, absolute
    Exact/Prefix paths, one backend kind, a port name or number and hosts that are DNS names;
    the columns are CLASS HOSTS ADDRESS PORTS as kubectl prints them."""
    t = REGISTRY.lookup("networking.k8s.io", "v1", "ingresses")
    assert t is not None and t.short_names == ("ing",)
    rule = {"host": "shop.example.com", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": backend()}]}}
    out, errs = create(t, ingress(rules=[rule], tls=[{"hosts": ["shop.example.com"]}]))
    assert errs == [] and out["status"] == {"loadBalancer": {}}
    assert t.strategy.cells(out) == ["<none>", "shop.example.com", "", "80, 443"]
    out, errs = create(t, ingress(defaultBackend=backend(), ingressClassName="nginx"))
    assert errs == [] and t.strategy.cells(out) == ["nginx", "*", "", "80"]

    _, errs = create(t, ingress())
    assert [(e.field, e.message) for e in errs] == [
        ("spec", "Invalid value: null: either `defaultBackend` or `rules` must be specified")]
    bad_paths = {"host": "10.0.0.1", "http": {"paths": [
        {"path": "/a", "backend": backend()},
        {"path": "a", "pathType": "Exact", "backend": backend()},
        {"path": "/b", "pathType": "Other", "backend": backend()},
        {"path": "/c", "pathType": "Prefix",
         "backend": {**backend(), "resource": {"kind": "K", "name": "n"}}},
        {"path": "/d", "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"name": "http", "number": 80}}}},
        {"path": "/e", "pathType": "Prefix", "backend": {"service": {"name": "web"}}},
    ]}}
    _, errs = create(t, ingress(rules=[bad_paths]))
    got = {(e.field, e.message) for e in errs}
    p = "spec.rules[0].http.paths"
    assert got == {
        ("spec.rules[0].host", 'Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
        (f"{p}[0].pathType", "Required value: pathType must be specified"),
        (f"{p}[1].path", 'Invalid value: "a": must be an absolute path'),
        (f"{p}[2].pathType", 'Unsupported value: "Other": supported values: "Exact", '
                             '"ImplementationSpecific", "Prefix"'),
        (f"{p}[3].backend", 'Invalid value: "": cannot set both resource and service backends'),
        (f"{p}[4].backend", 'Invalid value: "": cannot set both port name & port number'),
        (f"{p}[5].backend", "Required value: port name or number is required"),
    }
    wild = {"host": "*.example.com", "http": {"paths": [
        {"path": "/", "pathType": "ImplementationSpecific", "backend": backend()}]}}
    assert create(t, ingress(rules=[wild]))[1] == []


def test_ingressclass() -> None:
    """Given IngressClasses, then the controller is a required, immutable, domain-prefixed path
    and parameters follow their scope; PARAMETERS prints Kind.group/name."""
    t = REGISTRY.lookup("networking.k8s.io", "v1", "ingressclasses")
    assert t is not None and not t.namespaced
    ic = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
          "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
              "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}
    out, errs = create(t, ic)
    assert errs == []
    assert t.strategy.cells(out) == ["k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/external-lb"]
    bad = {**ic, "spec": {"controller": "nginx", "parameters": {"kind": "P", "name": "n",
                                                                 "scope": "Namespace"}}}
    assert fields(create(t, bad)[1]) == ["spec.controller", "spec.parameters.namespace"]
    moved = {**ic, "spec": {"controller": "example.com/other"}}
    assert [e.message for e in update(t, moved, out)[1]] == [
        'Invalid value: "example.com/other": field is immutable']


def hpa_v2(**spec: object) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     **spec}}


def test_hpa_defaults_validation_and_cells() -> None:
    """Given HPAs, then minReplicas defaults to 1 and metrics to CPU at 80%, a given behavior
    gets Kubernetes' rules, bounds and metric sources are checked with Kubernetes' paths, and the
    row is REFERENCE TARGETS MINPODS MAXPODS REPLICAS."""
    t = REGISTRY.by_kind("autoscaling", "HorizontalPodAutoscaler")
    assert t is not None and t.version == "v2"
    out, errs = create(t, hpa_v2(maxReplicas=5))
    assert errs == [] and out["spec"]["minReplicas"] == 1
    assert out["spec"]["metrics"] == [hpa.cpu_metric(80)]
    assert out["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert t.strategy.cells(out) == ["Deployment/web", "cpu: <unknown>/80%", 1, 5, 0]
    out, errs = create(t, hpa_v2(maxReplicas=3, behavior={"scaleDown": {"stabilizationWindowSeconds": 60}}))
    assert errs == [] and out["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert out["spec"]["behavior"]["scaleUp"] == hpa.SCALE_UP_DEFAULT
    memory = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "AverageValue", "averageValue": "500Mi"}}}
    out, _ = create(t, hpa_v2(maxReplicas=3, metrics=[hpa.cpu_metric(50), memory,
                                                      hpa.cpu_metric(60)]))
    assert t.strategy.cells(out)[1] == "cpu: <unknown>/50%, memory: <unknown>/500Mi + 1 more..."

    _, errs = create(t, {**hpa_v2(minReplicas=0, maxReplicas=0), "spec": {
        "minReplicas": 4, "maxReplicas": 2, "scaleTargetRef": {"name": "web"},
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
                    {"type": "Bogus"}, {"type": "Pods"}]}})
    assert [(e.field, e.message) for e in errs] == [
        ("spec.scaleTargetRef.kind", "Required value"),
        ("spec.maxReplicas", "Invalid value: 2: must be greater than or equal to `minReplicas`"),
        ("spec.metrics[0].resource.target.averageUtilization",
         "Required value: must set either a target raw value or a target utilization"),
        ("spec.metrics[1].type", 'Unsupported value: "Bogus": supported values: "ContainerResource", '
                                 '"External", "Object", "Pods", "Resource"'),
        ("spec.metrics[2].pods", "Required value: must populate information for the given metric source"),
    ]
    _, errs = create(t, hpa_v2(minReplicas=0, maxReplicas=1))
    assert fields(errs) == ["spec.minReplicas"]


def test_hpa_v1_round_trip() -> None:
    """Given a v1 HPA with a CPU target, then stored as v2 it has that metric; a v2 HPA with other
    metrics, a behavior and conditions reads back in v1 with them in Kubernetes' annotations and
    converts back to the same v2 object."""
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
                   "targetCPUUtilizationPercentage": 70}}
    v2 = hpa.v1_to_v2(v1)
    assert v2["apiVersion"] == "autoscaling/v2" and v2["spec"]["metrics"] == [hpa.cpu_metric(70)]
    assert "targetCPUUtilizationPercentage" not in v2["spec"]
    assert hpa.v2_to_v1(v2) == v1

    memory = {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 60}}}
    full = hpa_v2(maxReplicas=4, minReplicas=1, metrics=[hpa.cpu_metric(70), memory],
                  behavior={"scaleUp": {"selectPolicy": "Max"}})
    full["status"] = {"currentReplicas": 2, "desiredReplicas": 2,
                      "conditions": [{"type": "AbleToScale", "status": "True"}],
                      "currentMetrics": [{"type": "Resource", "resource": {
                          "name": "cpu", "current": {"averageUtilization": 35}}}]}
    shown = hpa.v2_to_v1(full)
    assert shown["spec"]["targetCPUUtilizationPercentage"] == 70
    assert shown["status"]["currentCPUUtilizationPercentage"] == 35
    assert set(shown["metadata"]["annotations"]) == {
        hpa.METRICS_ANNOTATION, hpa.BEHAVIOR_ANNOTATION, hpa.CONDITIONS_ANNOTATION,
        hpa.CURRENT_METRICS_ANNOTATION}
    assert hpa.v1_to_v2(shown) == full


def test_version_priority_and_discovery_order() -> None:
    """Given a group served in several versions, then the preferred (stored) one comes first,
    in Kubernetes' order: GA, then beta, then alpha, higher numbers first."""
    assert sorted(["v1", "v1alpha1", "v2", "v1beta1", "v2beta2"], key=version_priority) == [
        "v2", "v1", "v2beta2", "v1beta1", "v1alpha1"]
    assert [v for g, v in REGISTRY.group_versions() if g == "autoscaling"] == ["v2", "v1"]
    group = apidiscovery.api_group("autoscaling")
    assert group is not None and group["preferredVersion"]["version"] == "v2"
    assert [v for g, v in REGISTRY.group_versions() if g == "authentication.k8s.io"] == [
        "v1", "v1beta1", "v1alpha1"]
