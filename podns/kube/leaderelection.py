"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's `leaderelection` does it.

Several replicas of a controller manager run `LeaderElector.run()` on the same Lease; exactly
one holds it at a time and does the work. The holder renews `spec.renewTime` every
`retry_period`; the others check every `retry_period` and take the Lease over once it has not
changed for `lease_duration` seconds of *their own* clock (the time a record was first observed,
not the holder's renewTime, is compared, so clock skew between machines does not matter). All
writes are conditional on the Lease's resourceVersion: of two replicas racing for an expired
Lease, one gets a Conflict and stays follower.

A leader that cannot renew for `renew_deadline` seconds stops leading (its `on_started_leading`
task is cancelled and `on_stopped_leading` is called) and goes back to contending, so the
guarantee is: `lease_duration > renew_deadline` means a deposed leader stops before another
replica may start. On cancellation a leader releases the Lease (holder cleared) so a successor
takes over at once instead of after `lease_duration`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from podns.kube import errors
from podns.kube.resources import LEASES
from podns.objects.times import now_rfc3339_micro

log = logging.getLogger(__name__)

Obj = dict[str, Any]
Callback = Callable[[], Awaitable[Any] | None]

#: jitter factor on the followers' retry period (client-go's JitterFactor)
JITTER = 1.2


class LeaderElector:
    """Contend for the Lease `namespace/name` as `identity` (unique per replica).

    `on_started_leading()` is called when this replica becomes leader; when it returns an
    awaitable, that runs as a task which is cancelled when leadership is lost.
    `on_stopped_leading()` (sync or async) is called after leadership is lost.
    `on_new_leader(identity)` is called whenever the observed holder changes.
    Durations are seconds.
    """

    def __init__(
        self,
        client: Any,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        on_new_leader: Callable[[str], None] | None = None,
        release_on_cancel: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("leader election needs a non-empty identity")
        if lease_duration <= renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if renew_deadline <= JITTER * retry_period:
            raise ValueError("renew_deadline must be greater than retry_period * 1.2")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self._observed: Obj | None = None  # the Lease as last read or written
        self._observed_spec: Obj | None = None
        self._observed_time = 0.0  # monotonic time the current record was first seen
        self._reported_leader: str | None = None

    # -- observed state ----------------------------------------------------------------------

    @property
    def leader(self) -> str:
        """The identity of the holder as last observed ("" when none)."""
        spec = self._observed_spec or {}
        return str(spec.get("holderIdentity") or "")

    @property
    def is_leader(self) -> bool:
        """True while this replica holds a Lease it renewed within `lease_duration`."""
        return self.leader == self.identity and self._lease_valid(time.monotonic())

    def _lease_valid(self, now: float) -> bool:
        return self._observed_time + self.lease_duration > now

    def _observe(self, lease: Obj, now: float) -> None:
        spec = dict(lease.get("spec") or {})
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_time = now
        self._observed = lease
        holder = self.leader
        if holder != self._reported_leader:
            self._reported_leader = holder
            if self.on_new_leader is not None and holder:
                try:
                    self.on_new_leader(holder)
                except Exception:
                    log.exception("lease %s/%s: on_new_leader failed", self.namespace, self.name)

    # -- one attempt -------------------------------------------------------------------------

    def _record(self, *, acquire_time: str | None, transitions: int) -> Obj:
        stamp = now_rfc3339_micro()
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "acquireTime": acquire_time or stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        }

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to become or stay leader; True when we hold the Lease afterwards.
        API and transport errors count as a failed attempt (False), never raise."""
        now = time.monotonic()
        try:
            try:
                lease = await self.client.get(LEASES, self.name, self.namespace)
            except errors.NotFound:
                body = {
                    "apiVersion": LEASES.api_version, "kind": LEASES.kind,
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._record(acquire_time=None, transitions=0),
                }
                created = await self.client.create(LEASES, body, self.namespace)
                self._observe(created, time.monotonic())
                return True
            self._observe(lease, now)
            spec = self._observed_spec or {}
            holder = str(spec.get("holderIdentity") or "")
            if holder and holder != self.identity and self._lease_valid(now):
                return False  # held by another replica
            if holder == self.identity:
                record = self._record(acquire_time=spec.get("acquireTime"),
                                      transitions=int(spec.get("leaseTransitions") or 0))
            else:
                record = self._record(acquire_time=None,
                                      transitions=int(spec.get("leaseTransitions") or 0) + 1)
            updated = await self.client.update(LEASES, {**lease, "spec": record}, self.namespace)
            self._observe(updated, time.monotonic())
            return True
        except errors.Conflict:
            return False  # someone else wrote first
        except errors.KubeError as exc:
            log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
            return False

    async def release(self) -> bool:
        """Give the Lease up if we hold it (holder cleared, duration 1 s); True on success."""
        if self._observed is None or self.leader != self.identity:
            return False
        spec = dict(self._observed_spec or {})
        stamp = now_rfc3339_micro()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=stamp,
                    acquireTime=stamp)
        try:
            updated = await self.client.update(LEASES, {**self._observed, "spec": spec},
                                               self.namespace)
        except errors.KubeError as exc:
            log.warning("lease %s/%s: releasing failed: %s", self.namespace, self.name, exc)
            return False
        self._observe(updated, time.monotonic())
        return True

    # -- loops -------------------------------------------------------------------------------

    async def _acquire(self) -> None:
        while True:
            if await self.try_acquire_or_renew():
                return
            await asyncio.sleep(self.retry_period * random.uniform(1.0, JITTER))

    async def _renew(self) -> None:
        """Renew every retry_period; return when a renewal did not succeed within
        renew_deadline."""
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = time.monotonic() + self.renew_deadline
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        ok = await self.try_acquire_or_renew()
                except TimeoutError:
                    ok = False
                if ok:
                    break
                if time.monotonic() + self.retry_period >= deadline:
                    log.warning("lease %s/%s: could not renew within %ss; stepping down",
                                self.namespace, self.name, self.renew_deadline)
                    return
                await asyncio.sleep(self.retry_period)

    async def run(self) -> None:
        """Contend, lead, and contend again after losing, until cancelled."""
        while True:
            await self._acquire()
            log.info("lease %s/%s: %s became leader", self.namespace, self.name, self.identity)
            work: asyncio.Task[Any] | None = None
            try:
                work = await self._start_work()
                await self._renew()
            except asyncio.CancelledError:
                if self.release_on_cancel:
                    await asyncio.shield(self.release())
                raise
            finally:
                if work is not None and not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work
                await self._stopped()

    async def _start_work(self) -> asyncio.Task[Any] | None:
        if self.on_started_leading is None:
            return None
        result = self.on_started_leading()
        if not inspect.isawaitable(result):
            return None
        task = asyncio.ensure_future(result)
        task.add_done_callback(self._work_done)
        return task

    def _work_done(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("lease %s/%s: the leader's work failed (still holding the lease): %r",
                      self.namespace, self.name, task.exception())

    async def _stopped(self) -> None:
        if self.on_stopped_leading is None:
            return
        try:
            result = self.on_stopped_leading()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("lease %s/%s: on_stopped_leading failed", self.namespace, self.name)


__all__ = ["LeaderElector"]
