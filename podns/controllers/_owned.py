"""Ownership plumbing shared by the workload controllers (ReplicaSet, Deployment, Job, CronJob,
DaemonSet, StatefulSet): the informer indexes, the event handlers that map an owned object to the
keys of its owners, the selector check and Kubernetes' `ControllerRefManager` (`claim`).

Why one module: each controller owns objects of another kind through a controller owner
reference and must wire the same indexes and handlers; written once here, the copies cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from podns.controllers import workerloop
from podns.controllers._indexes import ensure as _ensure_index
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.informer import Informer
from podns.kube.resources import Resource
from podns.objects import (
    Obj,
    OwnerReference,
    SelectorError,
    controller_ref,
    join_key,
    labels_of,
    match_label_selector,
    meta_of,
    name_of,
    namespace_of,
    object_key,
    validate_label_selector,
)

#: index of objects by namespace
BY_NAMESPACE = "namespace"
#: index of owned objects by the uid of their controller
BY_CONTROLLER = "controller-uid"


def controller_uid(obj: Obj) -> list[str]:
    """Index function: the uid of the object's controller, if any."""
    ref = controller_ref(obj)
    return [str(ref.get("uid"))] if ref and ref.get("uid") else []


def namespace(obj: Obj) -> list[str]:
    """Index function: the object's namespace."""
    return [namespace_of(obj)]


def controller_key(obj: Obj, kind: str) -> str | None:
    """The key of the object's controller when it is of `kind`, else None."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return join_key(namespace_of(obj), str(ref.get("name") or ""))


def check_selector(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The workload's `spec.selector`; raises `SelectorError` when it is empty, invalid, or does
    not select the pod template's labels (non-transient: reported, not retried)."""
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    validate_label_selector(selector)
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        raise SelectorError("empty selector")
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not match_label_selector(selector, template_labels):
        raise SelectorError("selector does not match template labels")
    return dict(selector)


def spec_selector(owner: Obj) -> Any:
    """An owner's `spec.selector` (a LabelSelector)."""
    return (owner.get("spec") or {}).get("selector")


def owner_keys(obj: Obj, kind: str, owners: Informer,
               selector_of: Callable[[Obj], Any] = spec_selector) -> list[str]:
    """The keys of the `kind` objects to sync when `obj` changes: its controller when it has one
    of that kind, else (an orphan, not being deleted) every `kind` of its namespace whose
    selector (`selector_of`, a LabelSelector) matches it, since they may adopt it. `owners` is
    indexed `BY_NAMESPACE`."""
    if controller_ref(obj) is not None:
        key = controller_key(obj, kind)
        return [key] if key is not None else []
    if meta_of(obj).get("deletionTimestamp"):
        return []
    keys = []
    for owner in owners.by_index(BY_NAMESPACE, namespace_of(obj)):
        try:
            if match_label_selector(selector_of(owner), labels_of(obj)):
                keys.append(object_key(owner))
        except SelectorError:
            continue
    return keys


def ownership_changed(old: Obj, new: Obj) -> bool:
    """Whether an update may concern another owner than before (its controller or labels)."""
    return controller_ref(old) != controller_ref(new) or labels_of(old) != labels_of(new)


def watch_owner(controller: workerloop.Controller, owners: Informer) -> None:
    """Every add, update or delete of an owner enqueues its key."""
    def on_owner(obj: Obj) -> None:
        controller.enqueue(object_key(obj))

    owners.add_handler(on_add=on_owner, on_update=lambda _o, n: on_owner(n), on_delete=on_owner)


def watch_owned(controller: workerloop.Controller, kind: str, owners: Informer,
                owned: Informer, *, selector_of: Callable[[Obj], Any] = spec_selector
                ) -> Callable[[Obj], None]:
    """Index `owned` (by controller uid and namespace) and `owners` (by namespace), enqueue an
    owner on its own events (`watch_owner`) and, on each event of an owned object, the keys
    `owner_keys` gives (for an update, of the old object too when its ownership may have
    changed). Returns the owned-object handler, for controllers that also call it elsewhere."""
    _ensure_index(owned, BY_CONTROLLER, controller_uid)
    _ensure_index(owned, BY_NAMESPACE, namespace)
    _ensure_index(owners, BY_NAMESPACE, namespace)

    def on_owned(obj: Obj) -> None:
        for key in owner_keys(obj, kind, owners, selector_of):
            controller.enqueue(key)

    def on_owned_update(old: Obj, new: Obj) -> None:
        on_owned(new)
        if ownership_changed(old, new):
            on_owned(old)

    watch_owner(controller, owners)
    owned.add_handler(on_add=on_owned, on_update=on_owned_update, on_delete=on_owned)
    return on_owned


async def claim(client: Client, resource: Resource, owner: Obj, owner_ref: OwnerReference,
                owned: list[Obj], candidates: list[Obj], selector: Mapping[str, Any]) -> list[Obj]:
    """Kubernetes' `ControllerRefManager.Claim*`: the objects `owner` controls after adopting the
    orphans among `candidates` that match `selector` and releasing the `owned` ones that no
    longer match. Patches carry the object's resourceVersion, so a concurrent change fails them
    (Conflict, retried) instead of adopting something that changed meanwhile. An owner being
    deleted adopts nothing."""
    uid = str(meta_of(owner).get("uid", ""))
    keep = {object_key(o): o for o in owned}
    changes: list[tuple[Obj, list[OwnerReference]]] = []
    if not meta_of(owner).get("deletionTimestamp"):
        for obj in candidates:
            if (controller_ref(obj) is None and not meta_of(obj).get("deletionTimestamp")
                    and match_label_selector(selector, labels_of(obj))):
                changes.append((obj, [*(meta_of(obj).get("ownerReferences") or []), owner_ref]))
    for key, obj in list(keep.items()):
        if not match_label_selector(selector, labels_of(obj)):
            refs = [r for r in meta_of(obj).get("ownerReferences") or [] if r.get("uid") != uid]
            changes.append((obj, refs))
            del keep[key]
    for obj, refs in changes:
        patch = {"metadata": {"ownerReferences": refs or None,
                              "resourceVersion": meta_of(obj).get("resourceVersion")}}
        try:
            patched = await client.patch(resource, name_of(obj), patch, namespace_of(obj))
        except errors.NotFound:
            continue
        ref = controller_ref(patched)
        if ref is not None and ref.get("uid") == uid:
            keep[object_key(patched)] = patched
    return list(keep.values())


async def claim_owned(client: Client, resource: Resource, owned: Informer, owner: Obj,
                      owner_ref: OwnerReference, selector: Mapping[str, Any]) -> list[Obj]:
    """The cached `owned` objects (indexed by `watch_owned`) that `owner` controls, after `claim`
    adopted matching orphans of its namespace and released those that stopped matching; without
    an API call when there is nothing to adopt or release."""
    mine = owned.by_index(BY_CONTROLLER, str(meta_of(owner).get("uid", "")))
    candidates = [o for o in owned.by_index(BY_NAMESPACE, namespace_of(owner))
                  if controller_ref(o) is None]
    if not candidates and all(match_label_selector(selector, labels_of(o)) for o in mine):
        return mine
    return await claim(client, resource, owner, owner_ref, mine, candidates, selector)


__all__ = ["BY_CONTROLLER", "BY_NAMESPACE", "check_selector", "claim", "claim_owned", "controller_key",
           "controller_uid", "namespace", "owner_keys", "ownership_changed", "watch_owned",
           "watch_owner"]
