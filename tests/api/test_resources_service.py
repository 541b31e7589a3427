"""Services: defaults, validation with Kubernetes' paths and messages, allocation, immutability."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from podns.store.memory import MemoryStore

from ._kinds import Ctx, create, fields, rt, update

SVC = rt("Service")


def svc(**spec: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": dict(spec)}


@pytest.fixture
async def ctx() -> AsyncIterator[Ctx]:
    store = MemoryStore()
    yield Ctx(store)
    await store.close()


def test_defaults() -> None:
    """Given a minimal service, then type, protocol, targetPort and affinity default."""
    out, errs = create(SVC, svc(selector={"app": "db"}, ports=[{"port": 5432}]))
    assert errs == []
    spec = out["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"port": 5432, "protocol": "TCP", "targetPort": 5432}]
    assert spec["internalTrafficPolicy"] == "Cluster"  # ipFamilies: at admission (test_service_dualstack)
    assert out["status"] == {"loadBalancer": {}}


@pytest.mark.parametrize(
    "spec,path,message",
    [
        ({"ports": [{"port": 70000}]}, "spec.ports[0].port",
         "Invalid value: 70000: must be between 1 and 65535, inclusive"),
        ({"ports": [{"port": 1}, {"port": 2, "name": "b"}]}, "spec.ports[0].name", "Required value"),
        ({"ports": [{"port": 1, "name": "a"}, {"port": 2, "name": "a"}]}, "spec.ports[1].name",
         'Duplicate value: "a"'),
        ({"ports": [{"port": 1, "protocol": "HTTP"}]}, "spec.ports[0].protocol",
         'Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
        ({"type": "Bogus", "ports": [{"port": 1}]}, "spec.type",
         'Unsupported value: "Bogus": supported values: '
         '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
        ({"type": "ExternalName"}, "spec.externalName", "Required value"),
        ({"type": "ExternalName", "externalName": "x.example.com", "clusterIP": "10.96.0.5"},
         "spec.clusterIP", "Forbidden: may not be set for ExternalName services"),
        ({"ports": [{"port": 1, "nodePort": 30001}]}, "spec.ports[0].nodePort",
         "Forbidden: may not be used when `type` is 'ClusterIP'"),
        ({"clusterIP": "nope", "ports": [{"port": 1}]}, "spec.clusterIP",
         'Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'),
        ({}, "spec.ports", "Required value"),
        ({"selector": {"app": "a b"}, "ports": [{"port": 1}]}, "spec.selector", None),
    ],
    ids=["port-range", "name-required", "name-dup", "protocol", "type", "externalname",
         "externalname-ip", "nodeport-forbidden", "bad-ip", "ports-required", "selector"],
)
def test_validation(spec: dict, path: str, message: str | None) -> None:
    """Given an invalid service, then the error names Kubernetes' field path and wording."""
    _, errs = create(SVC, svc(**spec))
    assert path in fields(errs)
    if message:
        assert message in [e.message for e in errs if e.field == path]


def test_headless_needs_no_ports_and_bad_names() -> None:
    """Given a headless service without ports, then it is valid; a DNS-1035-invalid name is not."""
    _, errs = create(SVC, svc(clusterIP="None", selector={"app": "db"}))
    assert errs == []
    bad = svc(ports=[{"port": 1}])
    bad["metadata"]["name"] = "1db"
    _, errs = create(SVC, bad)
    assert fields(errs) == ["metadata.name"]
    assert errs[0].message.startswith('Invalid value: "1db": a DNS-1035 label must consist')


async def test_cluster_ip_allocation_and_release(ctx: Ctx) -> None:
    """Given services created in a small CIDR, then each gets a distinct address in it, a
    requested address is reserved, a taken one is refused, and release frees it."""
    seen = set()
    for _ in range(5):
        out, _ = create(SVC, svc(ports=[{"port": 80}]))
        assert await SVC.strategy.admit(out, None, ctx) == []
        ip = out["spec"]["clusterIP"]
        assert ip.startswith("10.96.0.") and ip not in ("10.96.0.0", "10.96.0.255")
        assert out["spec"]["clusterIPs"] == [ip]
        seen.add(ip)
    assert len(seen) == 5
    # an address none of the five random allocations took (a fixed one collided 1 run in 50)
    free = next(f"10.96.0.{n}" for n in range(77, 255) if f"10.96.0.{n}" not in seen)
    wanted, _ = create(SVC, svc(clusterIP=free, ports=[{"port": 80}]))
    assert await SVC.strategy.admit(wanted, None, ctx) == []
    again, _ = create(SVC, svc(clusterIP=free, ports=[{"port": 80}]))
    errs = await SVC.strategy.admit(again, None, ctx)
    assert errs and "provided IP is already allocated" in errs[0].message
    outside, _ = create(SVC, svc(clusterIP="10.1.0.1", ports=[{"port": 80}]))
    errs = await SVC.strategy.admit(outside, None, ctx)
    assert "is not in the valid range. The range of valid IPs is 10.96.0.0/24" in errs[0].message
    await SVC.strategy.release(wanted, ctx)
    assert await SVC.strategy.admit(again, None, ctx) == []


async def test_headless_and_externalname_get_no_ip(ctx: Ctx) -> None:
    """Given headless and ExternalName services, then admission allocates nothing."""
    headless, _ = create(SVC, svc(clusterIP="None", selector={"app": "db"}))
    assert await SVC.strategy.admit(headless, None, ctx) == []
    assert headless["spec"]["clusterIP"] == "None"
    ext, errs = create(SVC, svc(type="ExternalName", externalName="db.example.com"))
    assert errs == [] and await SVC.strategy.admit(ext, None, ctx) == []
    assert "clusterIP" not in ext["spec"]
    assert (await ctx.store.list("_alloc/")).items == []


async def test_node_ports(ctx: Ctx) -> None:
    """Given a NodePort service, then each port gets a node port in 30000-32767, kept on update."""
    ports = [{"port": 80, "name": "a"}, {"port": 81, "name": "b"}]
    out, errs = create(SVC, svc(type="NodePort", ports=ports))
    assert errs == [] and await SVC.strategy.admit(out, None, ctx) == []
    node_ports = [p["nodePort"] for p in out["spec"]["ports"]]
    assert all(30000 <= p <= 32767 for p in node_ports) and len(set(node_ports)) == 2
    new = svc(type="NodePort", ports=[{"port": 80, "name": "a"}, {"port": 81, "name": "b"}])
    updated, errs = update(SVC, new, out)
    assert errs == [] and [p["nodePort"] for p in updated["spec"]["ports"]] == node_ports
    assert updated["spec"]["clusterIP"] == out["spec"]["clusterIP"]


async def test_node_ports_range_duplicates_and_release(ctx: Ctx) -> None:
    """Given the server's node port range 31000-31002: a port outside it is 422 at its path with
    Kubernetes' message, a node port twice in one Service is a Duplicate, one already held is
    'already allocated'; a port dropped by an update, and all of them when the type changes to
    ClusterIP (nodePort dropped, as dropTypeDependentFields), are released for others."""
    ctx.node_port_range = (31000, 31002)
    outside, _ = create(SVC, svc(type="NodePort", ports=[{"port": 80, "nodePort": 30080}]))
    [err] = await SVC.strategy.admit(outside, None, ctx)
    assert err.field == "spec.ports[0].nodePort"
    assert err.message == ("Invalid value: 30080: provided port is not in the valid range. The range of "
                           "valid ports is 31000-31002")
    _, errs = create(SVC, svc(type="NodePort", ports=[{"port": 80, "name": "a", "nodePort": 31000},
                                                       {"port": 81, "name": "b", "nodePort": 31000}]))
    assert [(e.field, e.reason) for e in errs] == [("spec.ports[1].nodePort", "FieldValueDuplicate")]
    ports = [{"port": 80, "name": "a", "nodePort": 31000}, {"port": 81, "name": "b"}]
    first, errs = create(SVC, svc(type="NodePort", ports=ports))
    assert errs == [] and await SVC.strategy.admit(first, None, ctx) == []
    held = sorted(p["nodePort"] for p in first["spec"]["ports"])
    assert held[0] == 31000 and held[1] in (31001, 31002)
    other = svc(type="NodePort", ports=[{"port": 80, "nodePort": 31000}])
    other["metadata"]["name"] = "other"
    taken, _ = create(SVC, other)
    [err] = await SVC.strategy.admit(taken, None, ctx)
    assert err.message == "Invalid value: 31000: provided port is already allocated"
    one_port, errs = update(SVC, svc(type="NodePort", ports=[{"port": 80, "name": "a"}]), first)
    assert errs == [] and await SVC.strategy.admit(one_port, first, ctx) == []
    assert [p["nodePort"] for p in one_port["spec"]["ports"]] == [31000]
    keys = sorted(i["metadata"]["name"] for i in (await ctx.store.list("_alloc/nodeports/")).items)
    assert keys == ["31000"], keys
    plain, errs = update(SVC, svc(type="ClusterIP", ports=[{"port": 80, "name": "a", "nodePort": 31000}]),
                         one_port)
    assert errs == [] and "nodePort" not in plain["spec"]["ports"][0]
    assert await SVC.strategy.admit(plain, one_port, ctx) == []
    assert (await ctx.store.list("_alloc/nodeports/")).items == []
    assert await SVC.strategy.admit(taken, None, ctx) == []


async def test_external_traffic_policy_and_health_check_node_port(ctx: Ctx) -> None:
    """Given the node port range 31000-31003: externalTrafficPolicy defaults to Cluster on a
    NodePort (and a ClusterIP with externalIPs) and is refused on a plain ClusterIP with
    Kubernetes' message; a LoadBalancer with Local gets a healthCheckNodePort from the range
    (the requested one when given; 'already allocated' when held), kept when an update leaves
    it out, immutable while needed, refused on a NodePort; switching to Cluster releases it."""
    ctx.node_port_range = (31000, 31003)
    np, errs = create(SVC, svc(type="NodePort", ports=[{"port": 80}]))
    assert errs == [] and np["spec"]["externalTrafficPolicy"] == "Cluster"
    ext, errs = create(SVC, svc(externalIPs=["192.0.2.1"], ports=[{"port": 80}]))
    assert errs == [] and ext["spec"]["externalTrafficPolicy"] == "Cluster"
    _, errs = create(SVC, svc(externalTrafficPolicy="Local", ports=[{"port": 80}]))
    assert [(e.field, e.message) for e in errs] == [(
        "spec.externalTrafficPolicy",
        'Invalid value: "Local": may only be set for externally-accessible services')]
    _, errs = create(SVC, svc(type="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=31003,
                              ports=[{"port": 80}]))
    assert [(e.field, e.message) for e in errs] == [(
        "spec.healthCheckNodePort", "Invalid value: 31003: may only be set when `type` is 'LoadBalancer' "
        "and `externalTrafficPolicy` is 'Local'")]

    lb, errs = create(SVC, svc(type="LoadBalancer", externalTrafficPolicy="Local", ports=[{"port": 80}]))
    assert errs == [] and await SVC.strategy.admit(lb, None, ctx) == []
    hc = lb["spec"]["healthCheckNodePort"]
    assert 31000 <= hc <= 31003 and hc != lb["spec"]["ports"][0]["nodePort"]
    local = {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}
    kept, errs = update(SVC, svc(**local), lb)
    assert errs == [] and kept["spec"]["healthCheckNodePort"] == hc
    assert await SVC.strategy.admit(kept, lb, ctx) == []
    _, errs = update(SVC, svc(**local, healthCheckNodePort=31000 + (hc - 31000 + 1) % 4), lb)
    assert [(e.field, e.message) for e in errs] == [
        ("spec.healthCheckNodePort", "Forbidden: field is immutable")]

    other = svc(**local, healthCheckNodePort=hc)
    other["metadata"]["name"] = "other"
    taken, errs = create(SVC, other)
    assert errs == []
    [err] = await SVC.strategy.admit(taken, None, ctx)
    assert (err.field, err.message) == ("spec.healthCheckNodePort", f"Invalid value: {hc}: failed to "
                                        f"allocate requested HealthCheck NodePort {hc}: provided port is "
                                        "already allocated")
    held = sorted(i["metadata"]["name"] for i in (await ctx.store.list("_alloc/nodeports/")).items)
    assert len(held) == 2 and str(hc) in held  # the failed request gave back its node port

    cluster, errs = update(SVC, svc(**{**local, "externalTrafficPolicy": "Cluster"}, healthCheckNodePort=hc),
                           kept)
    assert errs == [] and "healthCheckNodePort" not in cluster["spec"]  # dropped: left as it was
    assert await SVC.strategy.admit(cluster, kept, ctx) == []
    held = sorted(i["metadata"]["name"] for i in (await ctx.store.list("_alloc/nodeports/")).items)
    assert str(hc) not in held and len(held) == 1
    plain, errs = update(SVC, svc(type="ClusterIP", externalTrafficPolicy="Cluster", ports=[{"port": 80}]),
                         cluster)
    assert errs == [] and "externalTrafficPolicy" not in plain["spec"]  # dropTypeDependentFields


async def test_cluster_ip_is_immutable(ctx: Ctx) -> None:
    """Given an allocated service, when an update changes clusterIP, then 422 'field is immutable';
    when it leaves clusterIP out, then the allocated one is kept."""
    old, _ = create(SVC, svc(ports=[{"port": 80}]))
    await SVC.strategy.admit(old, None, ctx)
    changed = svc(ports=[{"port": 80}], clusterIP="10.96.0.250")
    _, errs = update(SVC, changed, old)
    assert [(e.field, e.message) for e in errs] == [
        ("spec.clusterIP", 'Invalid value: "10.96.0.250": field is immutable')]
    kept, errs = update(SVC, svc(ports=[{"port": 80}]), old)
    assert errs == [] and kept["spec"]["clusterIP"] == old["spec"]["clusterIP"]
    headless = svc(ports=[{"port": 80}], clusterIP="None")
    _, errs = update(SVC, headless, old)
    assert fields(errs) == ["spec.clusterIP"]


def test_status_is_kept_apart() -> None:
    """Given an update of the main resource, then status comes from the stored object; a status
    update keeps the stored spec."""
    old, _ = create(SVC, svc(ports=[{"port": 80}]))
    old["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    new = svc(ports=[{"port": 81}])
    new["status"] = {"loadBalancer": {}}
    out, _ = update(SVC, new, old)
    assert out["status"] == old["status"]
    status_new = svc(ports=[{"port": 99}])
    status_new["status"] = {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}}
    SVC.strategy.prepare_for_status_update(status_new, old)
    assert status_new["spec"] == old["spec"]
    assert status_new["status"]["loadBalancer"]["ingress"][0]["ip"] == "5.6.7.8"


@pytest.mark.parametrize(
    "spec,cells",
    [
        ({"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]},
         ["ClusterIP", "None", "<none>", "5432/TCP", "app=db"]),
        ({"type": "NodePort", "clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30080}]},
         ["NodePort", "10.0.0.1", "<none>", "80:30080/TCP", "<none>"]),
        ({"type": "LoadBalancer", "clusterIP": "10.0.0.2", "ports": [{"port": 80, "protocol": "UDP"}]},
         ["LoadBalancer", "10.0.0.2", "<pending>", "80/UDP", "<none>"]),
        ({"type": "ExternalName", "externalName": "x.example.com"},
         ["ExternalName", "<none>", "x.example.com", "<none>", "<none>"]),
    ],
    ids=["headless", "nodeport", "lb", "externalname"],
)
def test_cells(spec: dict, cells: list[str]) -> None:
    """Given services of each type, then the row reads as `kubectl get svc -o wide` prints it."""
    assert SVC.strategy.cells(svc(**spec)) == cells
