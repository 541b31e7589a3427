"""Namespace lifecycle inside the API server: the initial namespaces and namespace deletion.

At start the four namespaces every cluster has (`default`, `kube-system`, `kube-public`,
`kube-node-lease`) are created when missing. Deleting a namespace (see `Rest.delete`) marks
it Terminating (`deletionTimestamp`, `status.phase`, `spec.finalizers: [kubernetes]`); the
`NamespaceCleaner` then deletes every object in it with ordinary deletion semantics (so pods
on a node terminate gracefully and finalizers are honoured) and, once nothing is left, drops
the `kubernetes` finalizer, which deletes the namespace. This is the work Kubernetes'
namespace controller does; it lives here because only the API server may touch the store
and it needs every served type. Cleanups interrupted by a restart resume at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from podns.api import statuserror
from podns.api.handlers.rest import DeleteOptions, Rest, WriteOptions
from podns.api.resources.base import Obj
from podns.api.resources.registry import Registry

log = logging.getLogger(__name__)

INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
#: seconds between passes over a terminating namespace's remaining objects (doubling)
POLL_MIN, POLL_MAX = 0.05, 2.0


class NamespaceCleaner:
    """Deletes the contents of terminating namespaces, then the namespaces."""

    def __init__(self, rest: Rest, registry: Registry) -> None:
        self.rest = rest
        self.registry = registry
        self._tasks: dict[str, asyncio.Task[None]] = {}
        ns_type = registry.lookup("", "v1", "namespaces")
        if ns_type is None:
            raise ValueError("the registry does not serve core/v1 namespaces")
        self.ns_type = ns_type

    async def ensure_initial(self) -> None:
        """Create the initial namespaces that do not exist yet."""
        for name in INITIAL_NAMESPACES:
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            with contextlib.suppress(statuserror.ApiError):
                await self.rest.get(self.ns_type, None, name)
                continue
            with contextlib.suppress(statuserror.ApiError):  # lost a race with a client: fine
                await self.rest.create(self.ns_type, None, body,
                                       WriteOptions(field_manager="podns-apiserver"))

    async def resume(self) -> None:
        """Restart cleanups of namespaces that were terminating when the server stopped."""
        listing = await self.rest.list(self.ns_type, None)
        for ns in listing["items"]:
            if (ns.get("metadata") or {}).get("deletionTimestamp"):
                await self.start(ns["metadata"]["name"])

    async def start(self, name: str) -> None:
        """Begin (once) deleting the contents of namespace `name`."""
        task = self._tasks.get(name)
        if task is None or task.done():
            self._tasks[name] = asyncio.create_task(self._clean(name), name=f"ns-cleanup-{name}")

    async def stop(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _clean(self, name: str) -> None:
        delay = POLL_MIN
        while True:
            try:
                remaining = await self._delete_contents(name)
                if remaining == 0:
                    await self._finalize(name)
                    return
            except statuserror.ApiError as exc:
                if exc.code == 404:
                    return  # the namespace is gone already
                log.warning("cleaning up namespace %s: %s", name, exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, POLL_MAX)

    async def _delete_contents(self, name: str) -> int:
        """One pass: delete what is deletable; returns how many objects remain."""
        remaining = 0
        for rt in self.registry.namespaced():
            listing = await self.rest.list(rt, name)
            for obj in listing["items"]:
                remaining += 1
                md = obj.get("metadata") or {}
                if md.get("deletionTimestamp"):
                    continue  # already terminating: wait for its finalizers / node agent
                with contextlib.suppress(statuserror.ApiError):
                    await self.rest.delete(rt, name, md.get("name", ""),
                                           DeleteOptions(propagation_policy="Background"))
        return remaining

    async def _finalize(self, name: str) -> None:
        def drop_finalizer(ns: Obj) -> Obj:
            fins = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"]
            ns.setdefault("spec", {})["finalizers"] = fins
            return ns

        await self.rest.update(self.ns_type, None, name, drop_finalizer,
                               WriteOptions(field_manager="podns-namespace-controller"),
                               subresource="finalize")
