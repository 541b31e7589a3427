"""StatefulSet pod control: the one place StatefulSet actions become API writes and events.

`StatefulPodControl.apply(sts, actions)` runs a plan's actions in order and stops at the first
failure, raising it, because later actions depend on earlier ones (a claim before its pod; in
OrderedReady one pod at a time). A nil return means every action was accepted by the API server.
Each write records an event on the StatefulSet with Kubernetes' reasons and wording
(`stateful_pod_control.go`): `SuccessfulCreate` / `FailedCreate` for pods and claims,
`SuccessfulDelete` / `FailedDelete`, `SuccessfulUpdate` / `FailedUpdate`.

Races with the cache are expected outcomes, not failures: creating a pod that already exists
means our cache is behind (`StaleCache`, looked at again shortly); deleting one already gone is
success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from podns.controllers import workerloop
from podns.controllers.statefulset.control import Action
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import NORMAL, WARNING, EventRecorder
from podns.kube.resources import PERSISTENTVOLUMECLAIMS, PODS
from podns.objects import controller_ref, join_key, meta_of, name_of, namespace_of


class PodNameTaken(Exception):
    """A pod with the name of one of our ordinals exists and belongs to someone else."""


class StatefulPodControl:
    """Applies StatefulSet actions through `client`, recording events with `recorder`."""

    def __init__(self, client: Client, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.recorder = recorder

    def _event(self, sts: Mapping[str, Any], ok: bool, verb: str, what: str, err: Exception | None = None
               ) -> None:
        if self.recorder is None:
            return
        reason = ("Successful" if ok else "Failed") + verb.capitalize()
        message = f"{verb} {what} in StatefulSet {name_of(sts)} {'successful' if ok else 'failed'}"
        if err is not None:
            message += f" error: {getattr(err, 'message', None) or err}"
        self.recorder.event(sts, NORMAL if ok else WARNING, reason, message)

    async def _name_taken(self, sts: Mapping[str, Any], ns: str, name: str) -> None:
        """A create found `name` taken: ours and not yet in the cache (StaleCache), or someone
        else's pod, which is reported (FailedCreate) and retried with back-off until it is gone."""
        try:
            existing = await self.client.get(PODS, name, ns)
        except errors.NotFound:
            raise workerloop.StaleCache(f"{join_key(ns, name)} deleted meanwhile") from None
        ref = controller_ref(existing)
        if ref is not None and ref.get("uid") == meta_of(sts).get("uid"):
            raise workerloop.StaleCache(join_key(ns, name))
        err = PodNameTaken(f"pod {ns}/{name} exists and is not controlled by StatefulSet {name_of(sts)}")
        self._event(sts, False, "create", f"Pod {name}", err)
        raise err

    async def apply(self, sts: Mapping[str, Any], actions: Sequence[Action], *, parallel: bool = False
                    ) -> None:
        """Run `actions` in order and raise the first failure (the caller retries with back-off).
        With `parallel` (podManagementPolicy Parallel) a failure only skips the remaining
        actions of the same ordinal (its pod after its claim); the others still run and the
        failures are raised together."""
        failed: list[Exception] = []
        broken: set[str] = set()
        for action in actions:
            ordinal = name_of(action.obj).rsplit("-", 1)[-1]
            if ordinal in broken:
                continue
            try:
                await self._one(sts, action)
            except Exception as exc:
                if not parallel:
                    raise
                failed.append(exc)
                broken.add(ordinal)
        if len(failed) == 1:
            raise failed[0]
        if failed:
            raise ExceptionGroup(f"{len(failed)} StatefulSet actions failed", failed)

    async def _one(self, sts: Mapping[str, Any], action: Action) -> None:
        obj = action.obj
        ns, name = namespace_of(obj) or namespace_of(sts), name_of(obj)
        if action.kind == "create_pvc":
            pod_name = f"{name_of(sts)}-{name.rsplit('-', 1)[-1]}"
            what = f"Claim {name} Pod {pod_name}"
            try:
                await self.client.create(PERSISTENTVOLUMECLAIMS, obj, ns)
            except errors.AlreadyExists:
                return  # created before, our cache is behind: fine
            except errors.KubeError as exc:
                self._event(sts, False, "create", what, exc)
                raise
            self._event(sts, True, "create", what)
        elif action.kind == "create_pod":
            try:
                await self.client.create(PODS, obj, ns)
            except errors.AlreadyExists:
                await self._name_taken(sts, ns, name)
            except errors.KubeError as exc:
                self._event(sts, False, "create", f"Pod {name}", exc)
                raise
            self._event(sts, True, "create", f"Pod {name}")
        elif action.kind in ("delete_pod", "delete_pvc"):
            resource = PODS if action.kind == "delete_pod" else PERSISTENTVOLUMECLAIMS
            what = f"Pod {name}" if action.kind == "delete_pod" else f"Claim {name}"
            try:
                await self.client.delete(resource, name, ns)
            except errors.NotFound:
                return
            except errors.KubeError as exc:
                self._event(sts, False, "delete", what, exc)
                raise
            self._event(sts, True, "delete", what)
        elif action.kind in ("patch_pod", "patch_pvc"):
            resource = PODS if action.kind == "patch_pod" else PERSISTENTVOLUMECLAIMS
            try:
                await self.client.patch(resource, name, action.patch, ns)
            except errors.NotFound:
                return
            except errors.KubeError as exc:
                self._event(sts, False, "update", f"Pod {name}", exc)
                raise
            self._event(sts, True, "update", f"Pod {name}")
        else:  # pragma: no cover - the Literal type makes this unreachable
            raise ValueError(f"unknown StatefulSet action {action.kind!r}")
