"""Pod control for controllers that create interchangeable pods (ReplicaSet, Job, DaemonSet):
slow-start creation, deletion, events and expectations (Kubernetes `controller_utils.go`
`RealPodControl`, `slowStartBatch`, `ControllerExpectations`).

`PodControl.apply(owner, key, create, delete)` creates pods in batches of 1, 2, 4, ... (a quota
or admission failure costs one request, not hundreds) and stops at the first failed batch, then
deletes in parallel; it raises the first failure (the caller retries with back-off). Each write
records Kubernetes' event on the owner: `SuccessfulCreate` "Created pod: NAME", `FailedCreate`
"Error creating: ...", `SuccessfulDelete` "Deleted pod: NAME", `FailedDelete` "Error deleting:
...". A pod already gone counts as deleted.

Expectations: the pods an owner created or deleted that the informer cache does not show yet.
`satisfied(key)` is False until they show (or `EXPECTATIONS_TIMEOUT` passes), and callers then
only write status, so a cache lagging behind our own writes never makes them create twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.informer import Informer
from podns.kube.resources import PODS
from podns.objects import Obj, meta_of, name_of, namespace_of, object_key

#: seconds after which unseen creations/deletions are no longer waited for (Kubernetes' value)
EXPECTATIONS_TIMEOUT = 300.0


def message(exc: BaseException) -> str:
    """The API's message of an error (its Status message), else its text."""
    return str(getattr(exc, "message", None) or exc)


class PodControl:
    """Creates and deletes pods for owners, remembering what its cache has yet to show."""

    def __init__(self, client: Client, pods: Informer, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.pods = pods
        self.recorder = recorder
        #: per owner key: (pod keys created but not cached yet, pod keys deleted but still
        #: cached without deletionTimestamp, since when)
        self._expect: dict[str, tuple[set[str], set[str], float]] = {}

    def satisfied(self, key: str) -> bool:
        """Whether the cache shows every creation and deletion made for `key`."""
        entry = self._expect.get(key)
        if entry is None:
            return True
        adds, dels, since = entry
        adds = {k for k in adds if self.pods.get(k) is None}
        dels = {k for k in dels
                if (p := self.pods.get(k)) is not None and not meta_of(p).get("deletionTimestamp")}
        if (not adds and not dels) or time.monotonic() - since > EXPECTATIONS_TIMEOUT:
            self._expect.pop(key, None)
            return True
        self._expect[key] = (adds, dels, since)
        return False

    def forget(self, key: str) -> None:
        self._expect.pop(key, None)

    def event(self, owner: Mapping[str, Any], type_: str, reason: str, text: str) -> None:
        if self.recorder is not None:
            self.recorder.event(owner, type_, reason, text)

    async def apply(self, owner: Mapping[str, Any], key: str, create: Sequence[Obj],
                    delete: Sequence[Mapping[str, Any]]) -> None:
        """Create `create` in slow-start batches, then delete `delete` in parallel; raise the
        first failure. `owner` (with kind and apiVersion) receives the events."""
        adds: set[str] = set()
        if create or delete:
            self._expect[key] = (adds, {object_key(p) for p in delete}, time.monotonic())
        ns = namespace_of(owner)
        pending, batch = list(create), 1
        while pending:
            now, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(*(self.client.create(PODS, p, ns) for p in now),
                                           return_exceptions=True)
            failed: BaseException | None = None
            for r in results:
                if isinstance(r, BaseException):
                    failed = failed or r
                    self.event(owner, WARNING, "FailedCreate", f"Error creating: {message(r)}")
                else:
                    adds.add(object_key(r))
                    self.event(owner, NORMAL, "SuccessfulCreate", f"Created pod: {name_of(r)}")
            if failed is not None:
                raise failed
            batch *= 2
        deleted = await asyncio.gather(*(self._delete(owner, p) for p in delete), return_exceptions=True)
        for outcome in deleted:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _delete(self, owner: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
        try:
            await self.client.delete(PODS, name_of(pod), namespace_of(pod))
        except errors.NotFound:
            return
        except errors.KubeError as exc:
            self.event(owner, WARNING, "FailedDelete", f"Error deleting: {message(exc)}")
            raise
        self.event(owner, NORMAL, "SuccessfulDelete", f"Deleted pod: {name_of(pod)}")


__all__ = ["EXPECTATIONS_TIMEOUT", "PodControl", "message"]
