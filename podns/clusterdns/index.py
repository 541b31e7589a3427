"""The record index: trimmed objects in, precomputed wire answers out.

Informers (or tests, or the benchmark) feed plain API objects through `on_<kind>_add/update/
delete`. Each event recomputes only the Service it touches (`records.service_records`),
diffs the result against what that Service contributed before, and applies the difference to
`answers`, the serving table: lower-case question bytes (name + type + class IN) -> `Entry`.
A query on the fast path is one dict lookup in that table. Dict item assignment is atomic
under the GIL, so the serving thread never sees a half-applied entry and never waits for an
update to finish.

SRV answers are not precomputed either: the table holds them once asked (`lazy_entry`, from
the serving thread's slow path) until their Service changes. At 10k headless Services they were
a third of the build time and ~13 MB of the table, for a question type few clients ask.
Updates (the event loop) and lazy builds (the serving thread) hold `lock`, so a lazily built
answer is never one from before a change that has already been applied.

Negative answers are not precomputed (their SOA serial moves); the handler builds them from
`names` (names that exist: NODATA) and `pending` (names about to exist: NXDOMAIN with a 1 s
negative TTL).

Until `mark_synced()` the table is built but not served: `serving` stays an empty dict, so
every in-zone question falls to the handler, which answers SERVFAIL.
"""

from __future__ import annotations

import contextlib
import functools
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from podns.clusterdns import trimmed, wire
from podns.clusterdns.answers import Entry, build_entry
from podns.clusterdns.metrics import Metrics
from podns.clusterdns.records import RRSet, ServiceRecords, label, ptr_order, service_records
from podns.clusterdns.wire import RR

_T = TypeVar("_T")
_P = ParamSpec("_P")
_QTAIL = {t: struct.pack("!HH", t, wire.CLASS_IN) for t in (wire.A, wire.AAAA, wire.SRV, wire.PTR,
                                                             wire.CNAME, wire.TXT, wire.NS)}


class Contribution(NamedTuple):
    """What one Service puts in the indexes (computed before a change to diff against after)."""

    keys: tuple[bytes, ...]
    names: frozenset[bytes]
    pending: frozenset[bytes]
    ptrs: frozenset[tuple[bytes, bytes]]
    external: bytes | None
    lazy: tuple[tuple[bytes, tuple[Any, ...]], ...]


_EMPTY = Contribution((), frozenset(), frozenset(), frozenset(), None, ())


def _locked(method: Callable[Concatenate[RecordIndex, _P], _T]) -> Callable[Concatenate[RecordIndex, _P], _T]:
    """Run `method` holding the index's lock (see the module docstring)."""
    def run(self: RecordIndex, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        with self.lock:
            return method(self, *args, **kwargs)
    functools.update_wrapper(run, method)
    return run


class RecordIndex:
    """Indexes fed by informer events; owns the serving table. Single writer (the event loop)."""

    def __init__(self, *, zone: str = "cluster.local", ttl: int = 5, pods: str = "insecure",
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 recursion: bool = False) -> None:
        """`recursion`: this server forwards names outside its zones, so every answer says
        recursion is available (RA; without it `nslookup` warns and tries the next server)."""
        self.zone_name = zone.strip(".").lower()
        self.zone = wire.name_to_wire(self.zone_name)
        self.ttl = ttl
        self.pods_mode = pods
        self.metrics = metrics
        self.clock = clock
        self.recursion = recursion
        self.answers: dict[bytes, Entry] = {}
        self.serving: dict[bytes, Entry] = {}
        self.synced = False
        self.serial = int(clock())
        self.names: dict[bytes, int] = {}
        self.pending: dict[bytes, int] = {}
        self.externals: dict[bytes, bytes] = {}
        self.services: dict[tuple[str, str], trimmed.Service] = {}
        self.slices: dict[tuple[str, str], trimmed.Slice] = {}
        #: (namespace, Service) -> its slices' names, sorted (a tuple: most Services have one
        #: slice, and a set per Service was 2.5 MB at 10k Services)
        self.slices_by_service: dict[tuple[str, str], tuple[str, ...]] = {}
        #: reverse name -> its PTR candidates: one target name (shared with the answers), or
        #: several in a tuple sorted by `records.ptr_order`; the first one wins
        self.ptr_cands: dict[bytes, bytes | tuple[bytes, ...]] = {}
        self._zone_labels = len([part for part in self.zone_name.split(".") if part])
        self.namespaces: set[str] = set()
        self.ns_services: dict[str, int] = {}
        self.pods: dict[tuple[str, str], trimmed.Pod] = {}
        self.pod_ips: dict[tuple[str, str], int] = {}
        self.statefulsets: dict[tuple[str, str], trimmed.StatefulSet] = {}
        self.record_count = 0
        self._building = True
        self._dirty: set[tuple[str, str]] = set()
        #: held by every change and by lazy SRV builds (re-entrant: an update calls an add)
        self.lock = threading.RLock()
        self._static()

    # ------------------------------------------------------------------ serving-side reads

    @_locked
    def mark_synced(self) -> None:
        """All informers have listed: compute every Service once, then serve (idempotent)."""
        if not self.synced:
            self._building = False
            for key in sorted(self._dirty):
                self._first(key)
            for ns in {key[0] for key in self._dirty}:
                self._ns_names(ns)
            if self._dirty:
                self.serial = max(self.serial, int(self.clock()))
            self._dirty.clear()
            self.synced = True
            self.serving = self.answers

    def namespace_exists(self, ns: str) -> bool:
        return ns in self.namespaces or ns in self.ns_services

    def pod_ip_exists(self, ns: str, ip: str) -> bool:
        return (ns, ip) in self.pod_ips

    def rrset(self, name: bytes, qtype: int) -> RRSet | None:
        """The RRSet a Service contributes for (name, type), for ExternalName chains in the zone
        (recomputed: rare, and not keeping RRSets in memory saves more than it costs)."""
        labels, pos = [], 0
        while name[pos]:
            labels.append(name[pos + 1:pos + 1 + name[pos]].decode("ascii", "replace"))
            pos += 1 + name[pos]
        depth = self.zone_name.count(".") + 2  # zone labels + "svc"
        if len(labels) < depth + 2 or labels[-depth] != "svc":
            return None
        with self.lock:
            return self._records((labels[-depth - 1], labels[-depth - 2])).rrsets.get((name, qtype))

    def lazy_entry(self, name: bytes, qtype: int) -> Entry | None:
        """The answer for an SRV question the table does not hold yet (None: no such RRset):
        built from the Service's records now, and kept in the table until the Service changes.
        Called by the serving thread's slow path, hence under the lock."""
        if qtype != wire.SRV or not self.synced or name not in self.names:
            return None
        with self.lock:
            rrset = self.rrset(name, qtype)
            if rrset is None:
                return None
            key = name + _QTAIL[qtype]
            entry = build_entry(name, qtype, rrset, self.metrics, recursion=self.recursion)
            prev = self.answers.get(key)
            self.record_count += entry.records - (prev.records if prev is not None else 0)
            self.answers[key] = entry
            return entry

    def soa_rr(self, owner: bytes, negative_ttl: int | None = None) -> RR:
        """The zone SOA as CoreDNS gives it; `negative_ttl` overrides TTL and minimum."""
        ttl = min(self.ttl, 300) if negative_ttl is None else negative_ttl
        minimum = self.ttl if negative_ttl is None else negative_ttl
        return RR(owner, wire.SOA, ttl, (b"\x02ns\x03dns" + self.zone, b"\x0ahostmaster" + self.zone,
                                         self.serial & 0xFFFFFFFF, 7200, 1800, 86400, minimum))

    # ------------------------------------------------------------------ informer events

    @_locked
    def on_service_add(self, obj: dict[str, Any]) -> None:
        svc = _trimmed(obj, trimmed.Service, trimmed.trim_service)
        key = (svc.namespace, svc.name)
        before = self._contribution(key)
        if key not in self.services:
            self.ns_services[svc.namespace] = self.ns_services.get(svc.namespace, 0) + 1
        self.services[key] = svc
        self._recompute(key, before)

    @_locked
    def on_service_update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.on_service_add(new)

    @_locked
    def on_service_delete(self, obj: dict[str, Any]) -> None:
        svc = _trimmed(obj, trimmed.Service, trimmed.trim_service)
        key = (svc.namespace, svc.name)
        before = self._contribution(key)
        if self.services.pop(key, None) is not None:
            left = self.ns_services[svc.namespace] - 1
            if left:
                self.ns_services[svc.namespace] = left
            else:
                del self.ns_services[svc.namespace]
            self._ns_names(svc.namespace)
        self._recompute(key, before)

    @_locked
    def on_slice_add(self, obj: dict[str, Any]) -> None:
        sl = _trimmed(obj, trimmed.Slice, trimmed.trim_slice)
        key = (sl.namespace, sl.name)
        old = self.slices.get(key)
        if old is not None and old.service != sl.service:
            self._unlink_slice(old)
        before = self._contribution((sl.namespace, sl.service)) if sl.service else None
        self.slices[key] = sl
        if sl.service:
            skey = (sl.namespace, sl.service)
            held = self.slices_by_service.get(skey, ())
            if sl.name not in held:
                self.slices_by_service[skey] = tuple(sorted((*held, sl.name)))
            self._recompute(skey, before)
        if sl.trigger_time is not None and self.metrics is not None and self.synced:
            kind = self._service_kind(sl)
            self.metrics.observe_programming(self.clock() - sl.trigger_time, kind)

    @_locked
    def on_slice_update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.on_slice_add(new)

    @_locked
    def on_slice_delete(self, obj: dict[str, Any]) -> None:
        sl = _trimmed(obj, trimmed.Slice, trimmed.trim_slice)
        old = self.slices.get((sl.namespace, sl.name))
        if old is not None:
            self._unlink_slice(old)  # first: its Service's records before need it in `slices`
            del self.slices[(sl.namespace, sl.name)]

    @_locked
    def on_namespace_add(self, obj: dict[str, Any]) -> None:
        ns = (obj if isinstance(obj, str) else trimmed.trim_namespace(obj))
        self.namespaces.add(ns)
        self._ns_names(ns)

    @_locked
    def on_namespace_update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.on_namespace_add(new)

    @_locked
    def on_namespace_delete(self, obj: dict[str, Any]) -> None:
        ns = (obj if isinstance(obj, str) else trimmed.trim_namespace(obj))
        self.namespaces.discard(ns)
        self._ns_names(ns)

    @_locked
    def on_pod_add(self, obj: dict[str, Any]) -> None:
        pod = _trimmed(obj, trimmed.Pod, trimmed.trim_pod)
        key = (pod.namespace, pod.name)
        old = self.pods.get(key)
        if old == pod:
            return
        if old is not None:
            self._pod_refs(old, -1)
        self.pods[key] = pod
        self._pod_refs(pod, +1)

    @_locked
    def on_pod_update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.on_pod_add(new)

    @_locked
    def on_pod_delete(self, obj: dict[str, Any]) -> None:
        pod = _trimmed(obj, trimmed.Pod, trimmed.trim_pod)
        old = self.pods.pop((pod.namespace, pod.name), None)
        if old is not None:
            self._pod_refs(old, -1)

    @_locked
    def on_statefulset_add(self, obj: dict[str, Any]) -> None:
        sts = _trimmed(obj, trimmed.StatefulSet, trimmed.trim_statefulset)
        key = (sts.namespace, sts.name)
        old = self.statefulsets.get(key)
        if old == sts:
            return
        if old is not None:
            self._sts_refs(old, -1)
        self.statefulsets[key] = sts
        self._sts_refs(sts, +1)

    @_locked
    def on_statefulset_update(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        self.on_statefulset_add(new)

    @_locked
    def on_statefulset_delete(self, obj: dict[str, Any]) -> None:
        sts = _trimmed(obj, trimmed.StatefulSet, trimmed.trim_statefulset)
        old = self.statefulsets.pop((sts.namespace, sts.name), None)
        if old is not None:
            self._sts_refs(old, -1)

    # ------------------------------------------------------------------ internals

    def _static(self) -> None:
        """Zone-wide names: apex, svc/pod subtrees, ns.dns, dns-version TXT."""
        for name in (self.zone, b"\x03svc" + self.zone, b"\x03pod" + self.zone, b"\x03dns" + self.zone,
                     b"\x02ns\x03dns" + self.zone):
            self._ref(self.names, name, +1)
        txt = b"\x0bdns-version" + self.zone
        self._ref(self.names, txt, +1)
        self._put(txt, wire.TXT, RRSet([RR(txt, wire.TXT, 28800, wire.txt_rdata("1.1.0"))]))

    def _service_kind(self, sl: trimmed.Slice) -> str:
        svc = self.services.get((sl.namespace, sl.service))
        if svc is None or svc.kind != trimmed.HEADLESS:
            return "cluster_ip"
        return "headless_with_selector"

    def _unlink_slice(self, sl: trimmed.Slice) -> None:
        if not sl.service:
            return
        skey = (sl.namespace, sl.service)
        before = self._contribution(skey)
        names = tuple(n for n in self.slices_by_service.get(skey, ()) if n != sl.name)
        if names:
            self.slices_by_service[skey] = names
        else:
            self.slices_by_service.pop(skey, None)
        self._recompute(skey, before)

    def _records(self, key: tuple[str, str], *, srv: bool = True) -> ServiceRecords:
        """Service `key`'s records; `srv` False: its SRV RRsets only named (what is indexed)."""
        svc = self.services.get(key)
        if svc is None:
            return ServiceRecords(srv=srv)
        slices = [self.slices[(key[0], n)] for n in self.slices_by_service.get(key, ())]
        return service_records(svc, slices, self.zone, self.ttl, srv=srv)

    def _contribution(self, key: tuple[str, str]) -> Contribution | None:
        """What Service `key` contributes now: called before a change, to diff against after it.

        Contributions are recomputed rather than kept: keeping one per Service (its answer
        keys, names, PTRs) cost a sixth of the index at 10k Services, and recomputing one is
        a fraction of a millisecond per event. None while building (nothing is served yet)."""
        if self._building:
            return None
        rec = self._records(key, srv=False)
        srv = _QTAIL[wire.SRV]
        keys = (*(owner + _QTAIL[qtype] for owner, qtype in rec.rrsets),
                *(owner + srv for owner, _ in rec.lazy))
        return Contribution(keys, frozenset(rec.names), frozenset(rec.pending), frozenset(rec.ptrs),
                            rec.external, tuple(rec.lazy))

    def _recompute(self, key: tuple[str, str], old: Contribution | None) -> None:
        """Recompute one Service's records and apply the difference from `old` (what it
        contributed before the change, `_contribution`) to every index.

        Before the first sync this only marks the Service dirty: `mark_synced` computes each
        Service once, instead of once per Service and once per EndpointSlice event."""
        if self._building or old is None:
            self._dirty.add(key)
            return
        svc = self.services.get(key)
        if svc is None and not old.names and not old.pending:
            return
        new = self._records(key, srv=False)
        changed = False
        new_keys = []
        answers = self.answers
        srv = _QTAIL[wire.SRV]
        new_lazy = tuple(new.lazy)
        for owner, _cands in new_lazy:  # built when asked (lazy_entry); a held one may be stale now
            qkey = owner + srv
            new_keys.append(qkey)
            prev = answers.pop(qkey, None)
            if prev is not None:
                self.record_count -= prev.records
        if new_lazy != old.lazy:
            changed = True
        for (owner, qtype), rrset in new.rrsets.items():
            qkey = owner + _QTAIL[qtype]
            new_keys.append(qkey)
            entry = build_entry(owner, qtype, rrset, self.metrics, recursion=self.recursion)
            prev = answers.get(qkey)
            if prev != entry:
                self.record_count += entry.records - (prev.records if prev is not None else 0)
                answers[qkey] = entry
                changed = True
        if old.keys:
            for qkey in set(old.keys).difference(new_keys):
                prev = answers.pop(qkey, None)
                if prev is not None:
                    self.record_count -= prev.records
                changed = True
        for name in old.names - new.names:
            self._ref(self.names, name, -1)
        for name in new.names - old.names:
            self._ref(self.names, name, +1)
        for name in old.pending - new.pending:
            self._ref(self.pending, name, -1)
        for name in new.pending - old.pending:
            self._ref(self.pending, name, +1)
        if old.external is not None or new.external is not None:
            try:
                base = service_name_of(key[0], key[1], self.zone)
            except ValueError:
                base = b""
            self.externals.pop(base, None)
            if new.external is not None:
                self.externals[base] = new.external
        new_ptrs = set(new.ptrs)
        for rev, target in old.ptrs - new_ptrs:
            self._ptr(rev, target, add=False)
        for rev, target in new_ptrs - old.ptrs if old.ptrs else new_ptrs:
            self._ptr(rev, target, add=True)
        self._ns_names(key[0])
        if changed:
            self.serial = max(self.serial, int(self.clock()))

    def _first(self, key: tuple[str, str]) -> None:
        """`_recompute(key, _EMPTY)` for the first build, without its diffing (nothing was there
        before; `mark_synced` does the namespaces' names and the serial once for all). The
        property test in tests/clusterdns/test_index_property.py holds the two to one result."""
        new = self._records(key, srv=False)
        answers, metrics, recursion = self.answers, self.metrics, self.recursion
        count = 0
        for (owner, qtype), rrset in new.rrsets.items():
            qkey = owner + _QTAIL[qtype]
            entry = build_entry(owner, qtype, rrset, metrics, recursion=recursion)
            prev = answers.get(qkey)
            count += entry.records - (prev.records if prev is not None else 0)
            answers[qkey] = entry
        self.record_count += count
        names, pending = self.names, self.pending
        for name in new.names:
            names[name] = names.get(name, 0) + 1
        for name in new.pending:
            pending[name] = pending.get(name, 0) + 1
        if new.external is not None:
            with contextlib.suppress(ValueError):
                self.externals[service_name_of(key[0], key[1], self.zone)] = new.external
        ptr = self._ptr
        for rev, target in new.ptrs:
            ptr(rev, target, add=True)

    def _ptr(self, rev: bytes, target: bytes, *, add: bool) -> None:
        """Add or remove PTR candidate `target` for reverse name `rev` (an IP's).

        Nearly every IP has one candidate: kept as the target name itself, the object the
        answers already hold (a priority tuple per IP was 7 MB at 100k endpoints). Several are
        kept sorted by `ptr_order`. The answer is built when asked (`ptr_target`), not
        precomputed: PTR questions are rare, and a precomputed answer (plus its name) per
        endpoint IP was a fifth of the index."""
        held = self.ptr_cands.get(rev)
        if held is None:  # the usual case: the IP's first candidate
            if add:
                self.ptr_cands[rev] = target
            return
        cands = tuple(c for c in ((held,) if isinstance(held, bytes) else held) if c != target)
        if add:
            zl = self._zone_labels
            cands = tuple(sorted((*cands, target), key=lambda c: ptr_order(rev, c, zl)))
        if len(cands) > 1:
            self.ptr_cands[rev] = cands
        elif cands:
            self.ptr_cands[rev] = cands[0]
        else:
            del self.ptr_cands[rev]

    def ptr_target(self, name: bytes) -> bytes | None:
        """The PTR target for reverse name `name` (lower-case wire), None if no IP of the
        cluster has it (a Service's cluster IP first, then endpoints, as CoreDNS picks)."""
        held = self.ptr_cands.get(name)
        if held is None or isinstance(held, bytes):
            return held
        return held[0]

    def _ns_names(self, ns: str) -> None:
        """`<ns>.svc.<zone>` and `<ns>.pod.<zone>` exist iff the namespace exists."""
        try:
            names = (label(ns) + b"\x03svc" + self.zone, label(ns) + b"\x03pod" + self.zone)
        except ValueError:
            return
        exists = self.namespace_exists(ns)
        for name in names:
            if exists:
                self.names.setdefault(name, 1)
            else:
                self.names.pop(name, None)

    def _put(self, owner: bytes, qtype: int, rrset: RRSet) -> None:
        key = owner + _QTAIL[qtype]
        old = self.answers.get(key)
        self.record_count += len(rrset.answer) - (old.records if old is not None else 0)
        self.answers[key] = build_entry(owner, qtype, rrset, self.metrics, recursion=self.recursion)

    def _drop(self, owner: bytes, qtype: int) -> None:
        entry = self.answers.pop(owner + _QTAIL[qtype], None)
        if entry is not None:
            self.record_count -= entry.records

    @staticmethod
    def _ref(table: dict[bytes, int], name: bytes, delta: int) -> None:
        count = table.get(name, 0) + delta
        if count > 0:
            table[name] = count
        else:
            table.pop(name, None)

    def _pod_refs(self, pod: trimmed.Pod, delta: int) -> None:
        if not pod.deleting:
            for ip in pod.ips:
                key = (pod.namespace, ip)
                count = self.pod_ips.get(key, 0) + delta
                if count > 0:
                    self.pod_ips[key] = count
                else:
                    self.pod_ips.pop(key, None)
        if pod.hostname and pod.subdomain:
            try:
                name = label(pod.hostname) + service_name_of(pod.namespace, pod.subdomain, self.zone)
            except ValueError:
                return
            self._ref(self.pending, name, delta)

    def _sts_refs(self, sts: trimmed.StatefulSet, delta: int) -> None:
        if not sts.service_name:
            return
        try:
            base = service_name_of(sts.namespace, sts.service_name, self.zone)
            for i in range(min(sts.replicas, 10000)):
                self._ref(self.pending, label(f"{sts.name}-{i}") + base, delta)
        except ValueError:
            return

    def stats(self) -> dict[str, int]:
        return {"services": len(self.services), "endpointslices": len(self.slices), "pods": len(self.pods),
                "statefulsets": len(self.statefulsets), "namespaces": len(self.namespaces),
                "answers": len(self.answers), "records": self.record_count}


def _trimmed(obj: Any, cls: type[_T], trim: Callable[[dict[str, Any]], _T]) -> _T:
    """Objects arrive as API dicts, or already trimmed by the informer's transform."""
    return obj if isinstance(obj, cls) else trim(obj)


def service_name_of(namespace: str, name: str, zone: bytes) -> bytes:
    return label(name) + label(namespace) + b"\x03svc" + zone

