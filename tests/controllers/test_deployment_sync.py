"""The Deployment control as a specification: Deployment + ReplicaSets -> this step's writes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from podns.controllers.deployment import util as du
from podns.controllers.deployment.sync import DeploymentPlan, plan
from podns.objects import now_rfc3339

Obj = dict[str, Any]
NOW = 1_800_000_000.0


def deployment(replicas: int = 3, *, image: str = "web:1", surge: Any = "25%", unavailable: Any = "25%",
               recreate: bool = False, deadline: int | None = 600, history: int = 10,
               paused: bool = False) -> Obj:
    strategy: Obj = {"type": "Recreate"} if recreate else {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    spec: Obj = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "web", "image": image}]}},
        "strategy": strategy,
        "revisionHistoryLimit": history,
        "paused": paused,
    }
    if deadline is not None:
        spec["progressDeadlineSeconds"] = deadline
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "generation": 1},
            "spec": spec, "status": {}}


class World:
    """A tiny cluster: applies a plan's writes and plays the ReplicaSet controller (pods appear
    and become available at once unless told otherwise)."""

    def __init__(self, d: Obj) -> None:
        self.d = d
        self.sets: dict[str, Obj] = {}
        self.log: list[str] = []
        self.events: list[str] = []
        self.now = NOW
        self.created = 0

    def step(self, pods_by_set: dict[str, list[Obj]] | None = None) -> DeploymentPlan:
        p = plan(self.d, list(self.sets.values()), pods_by_set or {}, now=self.now)
        for w in p.writes:
            name = w.obj["metadata"]["name"]
            if w.kind == "create_rs":
                self.created += 1
                obj = copy.deepcopy(w.obj)
                obj["metadata"].update(uid=f"uid-{name}", generation=1,
                                       creationTimestamp=now_rfc3339(NOW + self.created))
                obj["status"] = {}
                self.sets[name] = obj
                self.log.append(f"create {name} {w.obj['spec']['replicas']}")
            elif w.kind == "update_rs":
                obj = copy.deepcopy(w.obj)
                obj["status"] = self.sets[name].get("status", {})
                self.sets[name] = obj
                self.log.append(f"scale {name} {w.obj['spec']['replicas']}")
            else:
                del self.sets[name]
                self.log.append(f"delete {name}")
            if w.event:
                self.events.append(w.event[1])
        if p.status_update is not None:
            self.d = copy.deepcopy(p.status_update)
        return p

    def run_sets(self, available: bool = True, only: str | None = None) -> bool:
        """Every ReplicaSet's pods exist (and are available); returns whether a status changed."""
        changed = False
        for name, rs in self.sets.items():
            if only is not None and name != only:
                continue
            n = rs["spec"]["replicas"]
            status = {"replicas": n, "readyReplicas": n if available else 0,
                      "availableReplicas": n if available else 0, "observedGeneration": 1}
            changed = changed or rs.get("status") != status
            rs["status"] = status
        return changed

    def converge(self, rounds: int = 60, check: Any = None) -> None:
        for _ in range(rounds):
            p = self.step()
            if check:
                check(self)
            changed = self.run_sets()
            if check:
                check(self)
            if not p.writes and p.status_update is None and not changed:
                return
        raise AssertionError(f"did not converge: {self.log}")

    def new(self) -> Obj:
        found = du.find_new(self.d, list(self.sets.values()))
        assert found is not None
        return dict(found)

    def set_image(self, image: str) -> None:
        self.d["spec"]["template"]["spec"]["containers"][0]["image"] = image
        self.d["metadata"]["generation"] += 1


def test_first_rollout_creates_hashed_replica_set() -> None:
    """Given a new Deployment of 3, then one ReplicaSet web-<hash> of 3 is created with the hash
    in its name, template labels and selector, revision 1 on both, and Progressing
    NewReplicaSetCreated; once its pods are available the conditions say so."""
    w = World(deployment(3))
    p = w.step()
    assert [(x.kind, x.obj["spec"]["replicas"]) for x in p.writes] == [("create_rs", 3)]
    rs = p.writes[0].obj
    h = rs["spec"]["template"]["metadata"]["labels"][du.POD_TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", du.POD_TEMPLATE_HASH: h}
    assert rs["metadata"]["annotations"] == {du.REVISION: "1", du.DESIRED_REPLICAS: "3", du.MAX_REPLICAS: "4"}
    ref = rs["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("Deployment", "web", "uid-web", True)
    assert p.writes[0].event == ("ScalingReplicaSet", f"Scaled up replica set web-{h} to 3")
    assert w.d["metadata"]["annotations"][du.REVISION] == "1"
    prog = du.condition(w.d["status"], du.PROGRESSING)
    assert prog is not None and (prog["status"], prog["reason"]) == ("True", du.NEW_RS_CREATED)
    assert prog["message"] == f'Created new replica set "web-{h}"'
    w.converge()
    st = w.d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (3, 3, 3)
    assert "unavailableReplicas" not in st and st["observedGeneration"] == 1
    prog = du.condition(st, du.PROGRESSING)
    avail = du.condition(st, du.AVAILABLE)
    assert prog is not None and prog["reason"] == du.NEW_RS_AVAILABLE
    assert prog["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
    assert avail is not None and (avail["status"], avail["reason"]) == ("True", du.MIN_AVAILABLE)


@pytest.mark.parametrize(("surge", "unavailable", "floor", "ceiling"), [
    ("25%", 0, 10, 13), (0, 1, 9, 10), ("25%", "25%", 8, 13), (1, 0, 10, 11),
], ids=["surge25-unavail0", "surge0-unavail1", "defaults", "surge1-unavail0"])
def test_rolling_update_stays_within_fenceposts(surge: Any, unavailable: Any, floor: int,
                                                 ceiling: int) -> None:
    """Given 10 available replicas and a new image, then every step keeps at least
    `replicas - maxUnavailable` available and at most `replicas + maxSurge` pods wanted, and the
    rollout ends with all 10 on the new ReplicaSet and the old one at 0."""
    w = World(deployment(10, surge=surge, unavailable=unavailable))
    w.converge()
    old = w.new()["metadata"]["name"]
    w.set_image("web:2")

    def check(world: World) -> None:
        available = sum(rs["status"].get("availableReplicas", 0) for rs in world.sets.values())
        wanted = sum(rs["spec"]["replicas"] for rs in world.sets.values())
        assert available >= floor, world.log
        assert wanted <= ceiling, world.log

    w.converge(check=check)
    new = w.new()
    assert new["metadata"]["name"] != old and new["spec"]["replicas"] == 10
    assert w.sets[old]["spec"]["replicas"] == 0
    assert w.d["metadata"]["annotations"][du.REVISION] == "2"
    assert new["metadata"]["annotations"][du.REVISION] == "2"


def test_rolling_update_exact_steps_max_unavailable_zero() -> None:
    """Given 4 replicas, maxSurge 1, maxUnavailable 0, then the writes alternate: new up by one,
    old down by one, each only after the new pod is available."""
    w = World(deployment(4, surge=1, unavailable=0))
    w.converge()
    old = w.new()["metadata"]["name"]
    w.log.clear()
    w.set_image("web:2")
    w.converge()
    new = w.new()["metadata"]["name"]
    assert w.log == [f"create {new} 1", f"scale {old} 3", f"scale {new} 2", f"scale {old} 2",
                     f"scale {new} 3", f"scale {old} 1", f"scale {new} 4", f"scale {old} 0"]
    assert f"Scaled down replica set {old} to 3 from 4" in w.events


def test_no_scale_down_while_new_pods_unavailable() -> None:
    """Given maxUnavailable 0 and new pods that never become available, then the old
    ReplicaSet is never scaled down."""
    w = World(deployment(4, surge=1, unavailable=0))
    w.converge()
    old = w.new()["metadata"]["name"]
    w.set_image("web:broken")
    for _ in range(5):
        w.step()
        w.run_sets(available=False, only=w.new()["metadata"]["name"])
    assert w.sets[old]["spec"]["replicas"] == 4


def test_recreate_scales_old_to_zero_then_waits_for_pods() -> None:
    """Given Recreate, then the old ReplicaSet goes to 0 first, the new one is created only when
    no old pod runs, with all replicas at once."""
    w = World(deployment(3, recreate=True))
    w.converge()
    old = w.new()["metadata"]["name"]
    w.set_image("web:2")
    w.log.clear()
    w.step()
    assert w.log == [f"scale {old} 0"]
    w.run_sets()
    w.log.clear()
    terminating = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    w.step({old: [terminating]})
    assert w.log == []  # an old pod still runs: wait
    w.step({old: []})
    new = w.new()["metadata"]["name"]
    assert w.log == [f"create {new} 3"]


def test_rollback_reuses_old_replica_set_with_new_revision() -> None:
    """Given revisions 1 (web:1) and 2 (web:2), when the template goes back to web:1 (`rollout
    undo`), then the first ReplicaSet is reused: it becomes revision 3 with revision-history 1,
    no ReplicaSet is created."""
    w = World(deployment(2))
    w.converge()
    first = w.new()["metadata"]["name"]
    w.set_image("web:2")
    w.converge()
    w.set_image("web:1")
    w.log.clear()
    w.converge()
    assert w.new()["metadata"]["name"] == first
    assert not any(entry.startswith("create") for entry in w.log)
    ann = w.sets[first]["metadata"]["annotations"]
    assert (ann[du.REVISION], ann[du.REVISION_HISTORY]) == ("3", "1")
    assert w.d["metadata"]["annotations"][du.REVISION] == "3"


def test_proportional_scaling_during_rollout() -> None:
    """Given a stuck rollout of 10 (maxSurge 3, maxUnavailable 2: old 8, new 5), when scaled to
    15, then the 5 extra replicas go 3 to the old and 2 to the new ReplicaSet (Kubernetes'
    documented example)."""
    w = World(deployment(10, surge=3, unavailable=2))
    w.converge()
    old = w.new()["metadata"]["name"]
    w.set_image("web:broken")
    for _ in range(4):
        w.step()
        w.run_sets(available=False, only=w.new()["metadata"]["name"])
    new = w.new()["metadata"]["name"]
    assert (w.sets[old]["spec"]["replicas"], w.sets[new]["spec"]["replicas"]) == (8, 5)
    w.d["spec"]["replicas"] = 15
    w.log.clear()
    w.step()
    assert sorted(w.log) == sorted([f"scale {old} 11", f"scale {new} 7"])


def test_pause_stops_rollout_and_resume_continues() -> None:
    """Given a paused Deployment, when its template changes, then no ReplicaSet is created and
    Progressing is Unknown/DeploymentPaused; scaling still works; on resume the condition says
    DeploymentResumed and the rollout proceeds."""
    w = World(deployment(2))
    w.converge()
    w.d["spec"]["paused"] = True
    w.set_image("web:2")
    w.step()
    assert len(w.sets) == 1
    prog = du.condition(w.d["status"], du.PROGRESSING)
    assert prog is not None and (prog["status"], prog["reason"], prog["message"]) == (
        "Unknown", du.PAUSED, "Deployment is paused")
    w.d["spec"]["replicas"] = 4
    w.converge()
    assert [rs["spec"]["replicas"] for rs in w.sets.values()] == [4]
    w.d["spec"]["paused"] = False
    w.step()
    prog = du.condition(w.d["status"], du.PROGRESSING)
    assert prog is not None and prog["reason"] in (du.RESUMED, du.NEW_RS_CREATED)
    w.converge()
    assert w.new()["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    assert w.new()["spec"]["replicas"] == 4


def test_progress_deadline_exceeded() -> None:
    """Given progressDeadlineSeconds 60 and new pods that never become available, then after 60 s
    without progress Progressing is False/ProgressDeadlineExceeded, and the plan asks to be
    requeued around the deadline before that."""
    w = World(deployment(2, deadline=60, surge=1, unavailable=0))
    w.converge()
    w.set_image("web:broken")
    p = w.step()
    assert p.requeue_after is not None and 59 <= p.requeue_after <= 62
    w.now += 61
    w.step()
    prog = du.condition(w.d["status"], du.PROGRESSING)
    assert prog is not None and (prog["status"], prog["reason"]) == ("False", du.TIMED_OUT)
    assert prog["message"].endswith("has timed out progressing.")


def test_history_limit_deletes_oldest_empty_replica_sets() -> None:
    """Given revisionHistoryLimit 1 and three rollouts, then only one old ReplicaSet is kept
    (the newest), the older ones are deleted once scaled to zero."""
    w = World(deployment(1, history=1))
    w.converge()
    for image in ("web:2", "web:3"):
        w.set_image(image)
        w.converge()
    revisions = sorted(du.revision_of(rs) for rs in w.sets.values())
    assert revisions == [2, 3]
    assert any(entry.startswith("delete") for entry in w.log)


def test_adopted_saturated_new_scales_old_to_zero_on_scaling_event() -> None:
    """Given a scaling event while the new ReplicaSet is saturated, then the old ones are scaled
    to 0 (`IsSaturated` branch of `scale`)."""
    w = World(deployment(2))
    w.converge()
    w.set_image("web:2")
    w.converge()
    old = next(n for n in w.sets if n != w.new()["metadata"]["name"])
    w.sets[old]["spec"]["replicas"] = 1  # someone scaled the old one up by hand
    w.sets[old]["metadata"]["annotations"][du.DESIRED_REPLICAS] = "5"
    w.log.clear()
    w.step()
    assert w.log == [f"scale {old} 0"]


def test_fenceposts() -> None:
    """maxSurge rounds up, maxUnavailable down, both zero means one unavailable."""
    assert du.fenceposts(deployment(10)) == (3, 2)
    assert du.fenceposts(deployment(10, surge=0, unavailable="5%")) == (0, 1)
    assert du.max_unavailable(deployment(2, unavailable=5)) == 2
    assert du.max_surge(deployment(10, recreate=True)) == 0


def test_stale_old_status_never_lets_availability_drop() -> None:
    """Given maxUnavailable 0 and an old ReplicaSet whose status lags behind its scale-downs
    (still counting the pods being removed), then no step scales old replicas below what the
    available new pods make up for: old spec + new available stays at least `replicas`."""
    w = World(deployment(10, surge=3, unavailable=0))
    w.converge()
    old = w.new()["metadata"]["name"]
    stale = dict(w.sets[old]["status"])
    w.set_image("web:2")
    for _ in range(30):
        w.step()
        new = w.new()["metadata"]["name"]
        w.run_sets(only=new)
        w.sets[old]["status"] = dict(stale)  # the old ReplicaSet's status never catches up
        new_available = w.sets[new]["status"].get("availableReplicas", 0)
        assert w.sets[old]["spec"]["replicas"] + new_available >= 10, w.log
    assert w.sets[old]["spec"]["replicas"] == 0
