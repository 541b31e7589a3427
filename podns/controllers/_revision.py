"""ControllerRevisions of a StatefulSet or DaemonSet: snapshots of its pod template, named by a
hash (what `kubectl rollout history` lists and `rollout undo` patches back).

Pure. A revision is an apps/v1 ControllerRevision named `<owner>-<hash>` whose `data` holds the
pod template as Kubernetes stores it (`{"spec": {"template": {..., "$patch": "replace"}}}`),
whose labels are the template's plus `controller.kubernetes.io/hash` (so the owner's selector
finds it, as kubectl looks for it), whose `revision` number grows with each new template, and which
the owner controls. StatefulSet pods carry the revision name in their `controller-revision-hash`
label, DaemonSet pods the hash: that is how the controllers tell updated pods from current ones.

The hash is `_hash.template_hash` of the template and the collision count, which the controller
bumps when a name is taken by a revision with other contents.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from podns.controllers._hash import template_hash
from podns.objects import Obj, meta_of, name_of, namespace_of, owner_reference
from podns.objects.wellknown import HASH_LABEL

#: Default `spec.revisionHistoryLimit`.
DEFAULT_HISTORY_LIMIT = 10


def revision_data(sts: Mapping[str, Any]) -> Obj:
    """The `data` of a revision for the owner's current template."""
    template = copy.deepcopy((sts.get("spec") or {}).get("template") or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_template(revision: Mapping[str, Any]) -> Obj:
    """The pod template stored in a revision (without the `$patch` marker)."""
    template = copy.deepcopy(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def new_revision(sts: Mapping[str, Any], number: int, collision_count: int = 0, *,
                 kind: str = "StatefulSet") -> Obj:
    """A ControllerRevision for the owner's (a `kind`, apps/v1) current template with revision
    `number`."""
    template = (sts.get("spec") or {}).get("template") or {}
    digest = template_hash(template, collision_count)
    labels = dict((template.get("metadata") or {}).get("labels")
                  or ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    labels[HASH_LABEL] = digest
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{name_of(sts)}-{digest}",
            "namespace": namespace_of(sts),
            "labels": labels,
            "ownerReferences": [owner_reference({"apiVersion": "apps/v1", "kind": kind, **sts})],
        },
        "data": revision_data(sts),
        "revision": number,
    }


def equal_revision(revisions: Iterable[Mapping[str, Any]], want: Mapping[str, Any]) -> Obj | None:
    """The existing revision with the same template as `want` (highest number first), or None."""
    template = revision_template(want)
    for rev in sorted(revisions, key=lambda r: -int(r.get("revision") or 0)):
        if revision_template(rev) == template:
            return dict(rev)
    return None


def rolled_back(revisions: Sequence[Mapping[str, Any]], existing: Mapping[str, Any]) -> Obj | None:
    """`existing` (the revision equal to the current template) renumbered as the newest when an
    older template came back (a rollback: Kubernetes bumps its number instead of creating a
    duplicate, so the history stays ordered); None when it already is the newest."""
    latest = max((int(r.get("revision") or 0) for r in revisions), default=0)
    if int(existing.get("revision") or 0) < latest:
        return {**existing, "revision": latest + 1}
    return None


def next_number(revisions: Iterable[Mapping[str, Any]]) -> int:
    """The revision number a new revision gets: one more than the highest."""
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def history_to_delete(
    revisions: Sequence[Mapping[str, Any]], live: set[str], limit: int = DEFAULT_HISTORY_LIMIT
) -> list[Obj]:
    """Revisions to delete so at most `limit` non-live ones remain (oldest go first); `live`
    names are the current and update revisions and those pods still use."""
    history = sorted((r for r in revisions if name_of(r) not in live),
                     key=lambda r: int(r.get("revision") or 0))
    excess = len(history) - max(0, limit)
    return [dict(r) for r in history[:excess]] if excess > 0 else []


def is_owned_by(revision: Mapping[str, Any], sts: Mapping[str, Any]) -> bool:
    uid = meta_of(sts).get("uid")
    return any(ref.get("uid") == uid for ref in meta_of(revision).get("ownerReferences") or [])
