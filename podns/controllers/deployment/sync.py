"""The Deployment control: one Deployment, its ReplicaSets (and for Recreate its pods) -> this
step's ReplicaSet writes and the Deployment's status (Kubernetes `pkg/controller/deployment/`
`sync.go`, `rolling.go`, `recreate.go`, `progress.go`).

Pure. `plan(d, sets, pods_by_set, now=...)` runs Kubernetes' `syncDeployment` on private copies
and records each write instead of sending it, in the order the real controller sends them:

- paused, or a scaling event (a ReplicaSet's `desired-replicas` annotation differs from
  `spec.replicas`): `sync` — scale only, proportionally across active ReplicaSets during a
  rollout (`scale`), and clean up history when paused;
- RollingUpdate: create the new ReplicaSet (`<name>-<pod-template-hash>`) or scale it up within
  `maxSurge`, then scale old ones down within `maxUnavailable` (unhealthy replicas first), one of
  the two per step (`rolloutRolling`);
- Recreate: scale every old ReplicaSet to zero, wait until none of their pods runs, then create
  or scale up the new one (`rolloutRecreate`);
- status (`calculateStatus`, `syncRolloutStatus`): counts, `Available`, `Progressing` with
  `progressDeadlineSeconds`, `ReplicaFailure` copied from the ReplicaSets;
- revisions: the new ReplicaSet gets `deployment.kubernetes.io/revision` = max old + 1 (a rollback
  to an older template moves that ReplicaSet to the newest revision), copied to the Deployment;
  old ReplicaSets beyond `revisionHistoryLimit` with no pods are deleted (`cleanupDeployment`).

The caller applies `writes` in order and stops at the first failure (a Conflict means our cache
was stale: the next sync starts over from fresh state), then writes the status last (one write,
carrying the Deployment's revision annotation, as kube's status update may). Events ride on the
write that causes them and are recorded only when it succeeded.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from podns.controllers.deployment import util as du
from podns.objects import Obj, meta_of, name_of, now_rfc3339, parse_time

WriteKind = Literal["create_rs", "update_rs", "delete_rs"]


@dataclass(slots=True)
class Write:
    """One ReplicaSet write; `event` is (reason, message) recorded on the Deployment when it
    succeeds (type Normal)."""

    kind: WriteKind
    obj: Obj
    event: tuple[str, str] | None = None


@dataclass(slots=True)
class DeploymentPlan:
    """This step's ReplicaSet writes (in order), the Deployment to write through `/status`
    afterwards (None: unchanged), and when to look again (seconds; None = only on the next
    change) to notice a missed progress deadline."""

    writes: list[Write] = field(default_factory=list)
    status_update: Obj | None = None
    requeue_after: float | None = None


def _created(rs: Mapping[str, Any]) -> float:
    return parse_time(meta_of(rs).get("creationTimestamp")) or 0.0


def _rs_sort_size_newer(sets: Sequence[du.RS]) -> list[du.RS]:
    """Larger first; equal sizes newer first (`ReplicaSetsBySizeNewer`)."""
    return sorted(sets, key=lambda rs: (-du.replicas(rs), -_created(rs), name_of(rs)))


def _rs_sort_size_older(sets: Sequence[du.RS]) -> list[du.RS]:
    """Larger first; equal sizes older first (`ReplicaSetsBySizeOlder`)."""
    return sorted(sets, key=lambda rs: (-du.replicas(rs), _created(rs), name_of(rs)))


def _drop_zeros(status: Mapping[str, Any]) -> Obj:
    """Kubernetes serializes these counts with `omitempty`: zero means absent."""
    return {k: v for k, v in status.items() if v not in (0, None, [])}


class _Planner:
    """`syncDeployment` over private copies; every write is recorded in `self.plan`."""

    def __init__(self, d: Mapping[str, Any], sets: Sequence[Mapping[str, Any]], now: float) -> None:
        self.d: Obj = copy.deepcopy(dict(d))
        self.d.setdefault("metadata", {})
        self.d["status"] = dict(self.d.get("status") or {})
        self.sets: dict[str, Obj] = {name_of(rs): copy.deepcopy(dict(rs)) for rs in sets}
        self.now = now
        self.stamp = now_rfc3339(now)
        self.plan = DeploymentPlan()

    # -- writes --------------------------------------------------------------------------------

    def _write(self, kind: WriteKind, rs: Obj, event: tuple[str, str] | None = None) -> None:
        self.plan.writes.append(Write(kind, copy.deepcopy(rs), event))
        if kind == "delete_rs":
            self.sets.pop(name_of(rs), None)
        else:
            self.sets[name_of(rs)] = rs

    def scale(self, rs: Obj, size: int, *, always: bool = False) -> bool:
        """`scaleReplicaSet` (with `always`) / `scaleReplicaSetAndRecordEvent`: set replicas and
        the replicas annotations; returns whether the size changed."""
        old = du.replicas(rs)
        if old == size and not always:
            return False
        desired, maximum = du.replicas(self.d), du.replicas(self.d) + du.max_surge(self.d)
        if old == size and not du.replicas_annotations_need_update(rs, desired, maximum):
            return False
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = size
        du.set_replicas_annotations(new, desired, maximum)
        event = None
        if old != size:
            direction = "up" if size > old else "down"
            event = ("ScalingReplicaSet",
                     f"Scaled {direction} replica set {name_of(rs)} to {size} from {old}")
        self._write("update_rs", new, event)
        return old != size

    # -- new and old ReplicaSets ---------------------------------------------------------------

    def _set_revision(self, revision: str) -> None:
        ann = self.d["metadata"].setdefault("annotations", {})
        if ann.get(du.REVISION) != revision:
            ann[du.REVISION] = revision

    def _progressing(self, status: str, reason: str, message: str) -> Obj:
        return du.new_condition(du.PROGRESSING, status, reason, message, self.stamp)

    def all_sets(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """`getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when `create`) and
        the old ones, with revision annotations brought up to date."""
        found = du.find_new(self.d, list(self.sets.values()))
        olds = [rs for n, rs in self.sets.items() if found is None or n != name_of(found)]
        revision = du.max_revision(olds) + 1
        if found is not None:
            rs = copy.deepcopy(self.sets[name_of(found)])
            changed = du.set_new_annotations(self.d, rs, revision, exists=True)
            min_ready = int(du.spec(self.d).get("minReadySeconds") or 0)
            if changed or int(rs["spec"].get("minReadySeconds") or 0) != min_ready:
                rs["spec"]["minReadySeconds"] = min_ready
                self._write("update_rs", rs)
            self._set_revision((meta_of(rs).get("annotations") or {}).get(du.REVISION, ""))
            if du.has_progress_deadline(self.d) and du.condition(self.d["status"], du.PROGRESSING) is None:
                du.set_condition(self.d["status"], self._progressing(
                    "True", du.FOUND_NEW_RS, f'Found new replica set "{name_of(rs)}"'))
            return self.sets[name_of(rs)], olds
        if not create:
            return None, olds
        size = du.new_rs_replicas(self.d, olds, None)
        rs = du.new_replica_set(self.d, revision, size)
        self._write("create_rs", rs, ("ScalingReplicaSet", f"Scaled up replica set {name_of(rs)} to {size}")
                    if size > 0 else None)
        self._set_revision(str(revision))
        if du.has_progress_deadline(self.d):
            du.set_condition(self.d["status"], self._progressing(
                "True", du.NEW_RS_CREATED, f'Created new replica set "{name_of(rs)}"'))
        return rs, olds

    # -- the strategies --------------------------------------------------------------------------

    def rolling(self) -> None:
        new, _ = self.all_sets(create=True)
        assert new is not None
        if self._reconcile_new(new):
            return self.rollout_status()
        if self._reconcile_old(new):
            return self.rollout_status()
        if du.complete(self.d, self.d["status"]):
            self.cleanup()
        return self.rollout_status()

    def _reconcile_new(self, new: Obj) -> bool:
        want = du.replicas(self.d)
        if du.replicas(new) == want:
            return False
        if du.replicas(new) > want:
            return self.scale(new, want, always=True)
        size = du.new_rs_replicas(self.d, list(self.sets.values()), new)
        return self.scale(new, size, always=True)

    def _reconcile_old(self, new: Obj) -> bool:
        olds = [rs for rs in self.sets.values() if name_of(rs) != name_of(new)]
        if du.spec_count(olds) == 0:
            return False
        all_count = du.spec_count(self.sets.values())
        min_available = du.replicas(self.d) - du.max_unavailable(self.d)
        new_unavailable = du.replicas(new) - du.counted_available(new)
        max_scaled_down = all_count - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        cleaned = self._cleanup_unhealthy(new, max_scaled_down)
        scaled = self._scale_down_old(new)
        return cleaned + scaled > 0

    def _active_olds(self, new: Mapping[str, Any] | None) -> list[Obj]:
        return [rs for rs in du.by_creation(self.sets.values())
                if (new is None or name_of(rs) != name_of(new)) and du.replicas(rs) > 0]

    def _cleanup_unhealthy(self, new: Obj, max_cleanup: int) -> int:
        """`cleanupUnhealthyReplicas`: scale old ReplicaSets down by their unavailable pods."""
        total = 0
        for rs in self._active_olds(new):
            if total >= max_cleanup:
                break
            unavailable = du.replicas(rs) - du.counted_available(rs)
            if unavailable <= 0:
                continue
            count = min(max_cleanup - total, unavailable)
            self.scale(rs, du.replicas(rs) - count, always=True)
            total += count
        return total

    def _scale_down_old(self, new: Obj) -> int:
        """`scaleDownOldReplicaSetsForRollingUpdate`: keep `replicas - maxUnavailable` available."""
        min_available = du.replicas(self.d) - du.max_unavailable(self.d)
        available = sum(du.counted_available(rs) for rs in self.sets.values())
        if available <= min_available:
            return 0
        budget = available - min_available
        total = 0
        for rs in self._active_olds(new):
            if total >= budget:
                break
            count = min(du.replicas(rs), budget - total)
            self.scale(rs, du.replicas(rs) - count, always=True)
            total += count
        return total

    def recreate(self, pods_by_set: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        new, _ = self.all_sets(create=False)
        scaled = False
        for rs in self._active_olds(new):
            scaled = self.scale(rs, 0) or scaled
        if scaled or self._old_pods_running(new, pods_by_set):
            return self.rollout_status()
        if new is None:
            new, _ = self.all_sets(create=True)
        assert new is not None
        self.scale(self.sets[name_of(new)], du.replicas(self.d))
        if du.complete(self.d, self.d["status"]):
            self.cleanup()
        return self.rollout_status()

    def _old_pods_running(self, new: Mapping[str, Any] | None,
                          pods_by_set: Mapping[str, Sequence[Mapping[str, Any]]]) -> bool:
        olds = [rs for rs in self.sets.values() if new is None or name_of(rs) != name_of(new)]
        if du.status_count(olds, "replicas") > 0:
            return True
        for rs in olds:
            for pod in pods_by_set.get(name_of(rs), ()):
                if ((pod.get("status") or {}).get("phase") or "Pending") not in ("Failed", "Succeeded"):
                    return True
        return False

    def sync(self) -> None:
        """Paused or scaling: `sync` — scale, clean up when paused, status."""
        new, _ = self.all_sets(create=False)
        self._scale(new)
        if du.spec(self.d).get("paused"):
            self.cleanup()
        self.status_only()

    def _scale(self, new: Obj | None) -> None:
        olds = [rs for rs in self.sets.values() if new is None or name_of(rs) != name_of(new)]
        latest = self._active_or_latest(new, olds)
        want = du.replicas(self.d)
        if latest is not None:
            self.scale(latest, want)
            return
        if du.is_saturated(self.d, new):
            for rs in self._active_olds(new):
                self.scale(rs, 0)
            return
        if not du.is_rolling(self.d):
            return
        active = du.active(self.sets.values())
        allowed = want + du.max_surge(self.d) if want > 0 else 0
        to_add = allowed - du.spec_count(active)
        if to_add > 0:
            active = _rs_sort_size_newer(active)
        elif to_add < 0:
            active = _rs_sort_size_older(active)
        added, sizes = 0, {}
        for live in active:
            if to_add != 0:
                share = du.proportion(live, self.d, to_add, added)
                sizes[name_of(live)] = du.replicas(live) + share
                added += share
            else:
                sizes[name_of(live)] = du.replicas(live)
        for i, live in enumerate(active):
            size = sizes[name_of(live)]
            if i == 0 and to_add != 0:
                size = max(0, size + to_add - added)
            self.scale(self.sets[name_of(live)], size, always=True)

    def _active_or_latest(self, new: Obj | None, olds: list[Obj]) -> Obj | None:
        if new is None and not olds:
            return None
        newest_first = list(reversed(du.by_creation(olds)))
        candidates = du.active([*newest_first, new])
        if not candidates:
            return new if new is not None else newest_first[0]
        return candidates[0] if len(candidates) == 1 else None

    def cleanup(self) -> None:
        """`cleanupDeployment`: delete the oldest ReplicaSets without pods beyond
        `revisionHistoryLimit`."""
        limit = du.spec(self.d).get("revisionHistoryLimit")
        if limit is None:
            return
        new = du.find_new(self.d, list(self.sets.values()))
        olds = [rs for rs in self.sets.values() if (new is None or name_of(rs) != name_of(new))
                and not meta_of(rs).get("deletionTimestamp")]
        excess = len(olds) - int(limit)
        if excess <= 0:
            return
        olds.sort(key=lambda rs: (du.revision_of(rs), parse_time(meta_of(rs).get("creationTimestamp")) or 0.0,
                                  name_of(rs)))
        for rs in olds[:excess]:
            if (du.status_int(rs, "replicas") != 0 or du.replicas(rs) != 0
                    or int(meta_of(rs).get("generation") or 0) > du.status_int(rs, "observedGeneration")):
                continue
            self._write("delete_rs", rs)

    # -- status ------------------------------------------------------------------------------

    def calculate_status(self, new: Mapping[str, Any] | None) -> Obj:
        sets = list(self.sets.values())
        available = du.status_count(sets, "availableReplicas")
        old = self.d["status"]
        status: Obj = {
            "observedGeneration": int(meta_of(self.d).get("generation") or 0),
            "replicas": du.status_count(sets, "replicas"),
            "updatedReplicas": du.status_count([new], "replicas") if new is not None else 0,
            "readyReplicas": du.status_count(sets, "readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, du.spec_count(sets) - available),
            "collisionCount": old.get("collisionCount"),
        }
        status = _drop_zeros(status)
        if old.get("conditions"):
            status["conditions"] = copy.deepcopy(old["conditions"])
        if available >= du.replicas(self.d) - du.max_unavailable(self.d):
            cond = du.new_condition(du.AVAILABLE, "True", du.MIN_AVAILABLE,
                                    "Deployment has minimum availability.", self.stamp)
        else:
            cond = du.new_condition(du.AVAILABLE, "False", du.MIN_UNAVAILABLE,
                                    "Deployment does not have minimum availability.", self.stamp)
        du.set_condition(status, cond)
        return status

    def status_only(self) -> None:
        """`syncDeploymentStatus` / `syncStatusOnly`."""
        new = du.find_new(self.d, list(self.sets.values()))
        self.d["status"] = self.calculate_status(new)

    def rollout_status(self) -> None:
        """`syncRolloutStatus`: status plus the Progressing and ReplicaFailure conditions."""
        new = du.find_new(self.d, list(self.sets.values()))
        status = self.calculate_status(new)
        d = self.d
        if not du.has_progress_deadline(d):
            du.remove_condition(status, du.PROGRESSING)
        current = du.condition(d["status"], du.PROGRESSING)
        finished = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                    and current is not None and current.get("reason") == du.NEW_RS_AVAILABLE)
        what = f'ReplicaSet "{name_of(new)}"' if new is not None else f'Deployment "{name_of(d)}"'
        if du.has_progress_deadline(d) and not finished:
            if du.complete(d, status):
                du.set_condition(status, self._progressing(
                    "True", du.NEW_RS_AVAILABLE, f"{what} has successfully progressed."))
            elif du.progressing(d, status):
                cond = self._progressing("True", du.RS_UPDATED, f"{what} is progressing.")
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    du.remove_condition(status, du.PROGRESSING)
                du.set_condition(status, cond)
            elif du.timed_out(d, status, self.now):
                du.set_condition(status, self._progressing(
                    "False", du.TIMED_OUT, f"{what} has timed out progressing."))
        failures = self._replica_failures(new)
        if failures:
            du.set_condition(status, failures[0])
        else:
            du.remove_condition(status, du.REPLICA_FAILURE)
        d["status"] = status

    def _replica_failures(self, new: Mapping[str, Any] | None) -> list[Obj]:
        def of(rs: Mapping[str, Any]) -> list[Obj]:
            return [{"type": du.REPLICA_FAILURE, "status": c.get("status"),
                     "lastUpdateTime": c.get("lastTransitionTime"),
                     "lastTransitionTime": c.get("lastTransitionTime"),
                     "reason": c.get("reason"), "message": c.get("message")}
                    for c in (rs.get("status") or {}).get("conditions") or []
                    if c.get("type") == du.REPLICA_FAILURE]
        if new is not None and (found := of(new)):
            return found
        return [c for rs in self.sets.values() for c in of(rs)]

    def check_paused(self) -> None:
        """`checkPausedConditions`: Progressing Unknown DeploymentPaused / DeploymentResumed."""
        if not du.has_progress_deadline(self.d):
            return
        cond = du.condition(self.d["status"], du.PROGRESSING)
        if cond is not None and cond.get("reason") == du.TIMED_OUT:
            return
        paused_exists = cond is not None and cond.get("reason") == du.PAUSED
        paused = bool(du.spec(self.d).get("paused"))
        status = self.d["status"]
        if paused and not paused_exists:
            du.set_condition(status, self._progressing("Unknown", du.PAUSED, "Deployment is paused"))
        elif not paused and paused_exists:
            du.set_condition(status, self._progressing("Unknown", du.RESUMED, "Deployment is resumed"))

    def is_scaling_event(self) -> bool:
        new, olds = self.all_sets(create=False)
        for rs in du.active([*olds, new]):
            desired = du.desired_annotation(rs)
            if desired is not None and desired != du.replicas(self.d):
                return True
        return False

    def requeue_after(self) -> float | None:
        """`requeueStuckDeployment`: when the progress deadline would pass without news."""
        d = self.d
        cond = du.condition(d["status"], du.PROGRESSING)
        if not du.has_progress_deadline(d) or cond is None:
            return None
        if du.complete(d, d["status"]) or cond.get("reason") in (du.TIMED_OUT, du.NEW_RS_AVAILABLE):
            return None
        if du.spec(d).get("paused"):
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        return max(0.0, since + int(du.spec(d)["progressDeadlineSeconds"]) - self.now) + 1.0


def plan(d: Mapping[str, Any], sets: Sequence[Mapping[str, Any]],
         pods_by_set: Mapping[str, Sequence[Mapping[str, Any]]] | None = None, *, now: float
         ) -> DeploymentPlan:
    """This step for Deployment `d`. `sets` are the ReplicaSets it controls; `pods_by_set` the
    pods of each (by ReplicaSet name, terminating ones included; only Recreate reads them);
    `now` the time (seconds since the epoch) for conditions and the progress deadline."""
    p = _Planner(d, sets, now)
    if meta_of(d).get("deletionTimestamp"):
        p.all_sets(create=False)
        p.status_only()
    else:
        p.check_paused()
        if du.spec(p.d).get("paused") or p.is_scaling_event():
            p.sync()
        elif du.is_rolling(p.d):
            p.rolling()
        else:
            p.recreate(pods_by_set or {})
    original = dict(d.get("status") or {})
    before = (meta_of(d).get("annotations") or {}, _comparable(original))
    after = (meta_of(p.d).get("annotations") or {}, _comparable(p.d["status"]))
    if before != after:
        p.plan.status_update = p.d
    p.plan.requeue_after = p.requeue_after()
    return p.plan


def _comparable(status: Mapping[str, Any]) -> Obj:
    return _drop_zeros(status)
