"""The RBAC authorizer of the API server (Kubernetes' `plugin/pkg/auth/authorizer/rbac`).

Authentication (`podns.api.server.authentication`) turns a bearer token into a `UserInfo` (name
and groups); the dispatcher builds the request's `Attributes` from its `RequestInfo` and asks
`Authorizer.authorize`. Members of `system:masters` are always allowed (kube-apiserver's
privileged group; the admin token is in it). Everyone else is allowed when a rule of a role bound
to the user, or to one of its groups, matches: cluster-wide through ClusterRoleBindings, in one
namespace through RoleBindings there.

Rules are not scanned per request: `RuleIndex` maps each subject (`User`/`Group` name; a
ServiceAccount subject is the user `system:serviceaccount:<ns>:<name>`) to the compiled rules of
its bindings, cluster-wide and per namespace. `Authorizer` keeps a copy of the four RBAC
collections, fed by store watches, and rebuilds the index after each change (coalesced), as
kube-apiserver's informers do; a binding to a role that does not exist grants nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from podns.store.interface import Store, WatchEvent

log = logging.getLogger(__name__)

ADMIN_USER = "admin"
READONLY_USER = "readonly"
#: kube-apiserver's privileged group: every request allowed, no rule consulted
MASTERS_GROUP = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
RBAC_GROUP = "rbac.authorization.k8s.io"

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated (or impersonated) user: name, groups, extra (impersonation's
    `Impersonate-Extra-*`), as Kubernetes' `user.Info`."""

    name: str
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: the ServiceAccount's uid for a ServiceAccount token; "" otherwise
    uid: str = ""

    def to_json(self) -> Obj:
        """authentication.k8s.io/v1 UserInfo."""
        out: Obj = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra}
        return out


#: the users of the two data-dir tokens
ADMIN = UserInfo(ADMIN_USER, (MASTERS_GROUP, AUTHENTICATED_GROUP))
READONLY = UserInfo(READONLY_USER, (AUTHENTICATED_GROUP,))

#: the components' users (their client certificates' CN; `podns.api.server.kubeconfig`)
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
DNS_USER = "system:podns-dns"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"


def node_user(node: str) -> str:
    """The user name of node agent `node` (`system:node:<node>`)."""
    return NODE_USER_PREFIX + node


def node_name_of(user: UserInfo) -> str | None:
    """The node a user is (Kubernetes' NodeIdentifier): `<name>` of a `system:node:<name>` in
    group `system:nodes`; "" for a user of that group with another name; None for non-nodes."""
    if NODES_GROUP not in user.groups:
        return None
    return user.name[len(NODE_USER_PREFIX):] if user.name.startswith(NODE_USER_PREFIX) else ""


def service_account_user(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def service_account_groups(namespace: str) -> tuple[str, ...]:
    """The groups Kubernetes gives every ServiceAccount of `namespace`."""
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request does, as the authorizer sees it (`authorizer.Attributes`): a resource
    request (verb on group/resource/subresource, namespace, name) or a non-resource one (verb on
    `path`)."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    namespace: str = ""
    group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled PolicyRule (sets for membership tests; `*` kept as a member)."""

    verbs: frozenset[str]
    groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    urls: tuple[str, ...] = ()
    #: the PolicyRule as written (SelfSubjectRulesReview lists it as is)
    raw: Obj = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_obj(cls, rule: Obj) -> Rule:
        def strs(key: str) -> list[str]:
            value = rule.get(key) or []
            return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

        return cls(frozenset(strs("verbs")), frozenset(strs("apiGroups")),
                   frozenset(strs("resources")), frozenset(strs("resourceNames")),
                   tuple(strs("nonResourceURLs")), rule)

    def allows(self, a: Attributes) -> bool:
        """Kubernetes' `RuleAllows`."""
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return any(u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
                       for u in self.urls)
        if "*" not in self.groups and a.group not in self.groups:
            return False
        wanted = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
        if not ("*" in self.resources or wanted in self.resources
                or (a.subresource and f"*/{a.subresource}" in self.resources)):
            return False
        return not self.names or a.name in self.names


#: verdicts of an authorizer in front of RBAC (the Node authorizer)
ALLOW, NO_OPINION, DENY = "allow", "no-opinion", "deny"


@dataclass(frozen=True, slots=True)
class Decision:
    """`verdict`: ALLOW, NO_OPINION (RBAC decides; `reason` is added to its 403) or DENY
    (NodeRestriction: 403 with `reason` as the whole explanation)."""

    verdict: str
    reason: str = ""


class FrontAuthorizer(Protocol):
    """An authorizer asked before RBAC (kube-apiserver's `--authorization-mode=Node,RBAC`):
    None means the request is not its business."""

    def decide(self, a: Attributes) -> Decision | None: ...

    def admit_create(self, user: UserInfo, resource: str, group: str, body: Any) -> str | None:
        """Why creating `body` is refused (NodeRestriction's reason), or None."""
        ...


def compile_rules(rules: Any) -> tuple[Rule, ...]:
    return tuple(Rule.from_obj(r) for r in rules or [] if isinstance(r, dict))


def _subject_keys(subject: Obj, binding_ns: str) -> str | None:
    """The index key of a binding subject: `u:<user>` or `g:<group>`, None when not usable."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return f"u:{name}"
    if kind == "Group":
        return f"g:{name}"
    if kind == "ServiceAccount":
        return "u:" + service_account_user(subject.get("namespace") or binding_ns, name)
    return None


@dataclass(slots=True)
class RuleIndex:
    """Subject -> compiled rules of the roles bound to it: `cluster[key]` for ClusterRoleBindings,
    `namespaced[(namespace, key)]` for RoleBindings. Keys: `u:<user>`, `g:<group>`."""

    cluster: dict[str, list[Rule]] = field(default_factory=dict)
    namespaced: dict[tuple[str, str], list[Rule]] = field(default_factory=dict)

    @classmethod
    def build(cls, roles: Iterable[Obj], cluster_roles: Iterable[Obj], bindings: Iterable[Obj],
              cluster_bindings: Iterable[Obj]) -> RuleIndex:
        """Resolve every binding's roleRef once; a missing role contributes no rule."""
        role_rules = {(_meta(r, "namespace"), _meta(r, "name")): compile_rules(r.get("rules"))
                      for r in roles}
        cr_rules = {_meta(r, "name"): compile_rules(r.get("rules")) for r in cluster_roles}
        index = cls()
        for b in cluster_bindings:
            ref = b.get("roleRef") or {}
            rules = cr_rules.get(ref.get("name", "")) if ref.get("kind") == "ClusterRole" else None
            for key in _keys(b, ""):
                if rules:
                    index.cluster.setdefault(key, []).extend(rules)
        for b in bindings:
            ns = _meta(b, "namespace")
            ref = b.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                rules = cr_rules.get(ref.get("name", ""))
            elif ref.get("kind") == "Role":
                rules = role_rules.get((ns, ref.get("name", "")))
            else:
                rules = None
            for key in _keys(b, ns):
                if rules:
                    index.namespaced.setdefault((ns, key), []).extend(rules)
        return index

    def rules_for(self, user: UserInfo, namespace: str) -> Iterable[Rule]:
        """The rules that apply to `user` in `namespace` ("" = cluster scope only)."""
        keys = [f"u:{user.name}", *(f"g:{g}" for g in user.groups)]
        for key in keys:
            yield from self.cluster.get(key, ())
        if namespace:
            for key in keys:
                yield from self.namespaced.get((namespace, key), ())

    def allows(self, a: Attributes) -> bool:
        return any(rule.allows(a) for rule in self.rules_for(a.user, a.namespace))


def _meta(obj: Obj, key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _keys(binding: Obj, ns: str) -> list[str]:
    keys = []
    for s in binding.get("subjects") or []:
        if isinstance(s, dict) and (key := _subject_keys(s, ns)) is not None:
            keys.append(key)
    return keys


#: decisions remembered per index before the cache starts over
DECISION_CACHE_SIZE = 10_000

#: store prefixes of the four RBAC collections, in `RuleIndex.build` argument order
PREFIXES = tuple(f"{r}.{RBAC_GROUP}/" for r in ("roles", "clusterroles", "rolebindings",
                                                "clusterrolebindings"))


class Authorizer:
    """RBAC over a store: `await start()` lists and watches the RBAC collections, `authorize`
    answers from the index (never touching the store), `await stop()`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = RuleIndex()
        self._objects: dict[str, dict[str, Obj]] = {p: {} for p in PREFIXES}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        #: the store revision the index reflects (tests wait on it)
        self.synced_rv = 0
        self._pending_rv = 0
        #: decisions of the current index (cleared with each rebuild): a client repeating the
        #: same request (a controller's list, a pod's get) costs one dict lookup
        self._decisions: dict[Attributes, bool] = {}
        #: asked first for node users (the Node authorizer; set by the API server)
        self.front: FrontAuthorizer | None = None

    def explain(self, a: Attributes) -> Decision:
        """Why `a` is denied: a DENY of the front authorizer (its reason is the whole story),
        else NO_OPINION with the front authorizer's reason (appended to RBAC's wording)."""
        first = self.front.decide(a) if self.front is not None else None
        return first if first is not None else Decision(NO_OPINION)

    def authorize(self, a: Attributes) -> bool:
        if MASTERS_GROUP in a.user.groups:
            return True
        if self.front is not None and NODES_GROUP in a.user.groups:
            first = self.front.decide(a)
            if first is not None and first.verdict != NO_OPINION:
                return first.verdict == ALLOW
        decided = self._decisions.get(a)
        if decided is None:
            if len(self._decisions) >= DECISION_CACHE_SIZE:
                self._decisions.clear()
            decided = self._decisions[a] = self.index.allows(a)
        return decided

    def set_index(self, index: RuleIndex) -> None:
        """Swap in a new index (and forget the old one's decisions)."""
        self.index = index
        self._decisions = {}

    async def start(self) -> None:
        rv = await self._relist()
        self._tasks = [asyncio.create_task(self._watch(p, rv), name=f"rbac-watch-{p}")
                       for p in PREFIXES]
        self._tasks.append(asyncio.create_task(self._rebuilder(), name="rbac-index"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []

    async def _relist(self) -> int:
        rv = 0
        for prefix in PREFIXES:
            listing = await self.store.list(prefix)
            self._objects[prefix] = {_key(o, prefix): o for o in listing.items}
            rv = max(rv, listing.rv)
        self._rebuild(rv)
        return rv

    def _rebuild(self, rv: int) -> None:
        self.set_index(RuleIndex.build(*(self._objects[p].values() for p in PREFIXES)))
        self.synced_rv = max(self.synced_rv, rv)

    async def _watch(self, prefix: str, rv: int) -> None:
        def apply(ev: WatchEvent) -> None:
            if ev.type == "DELETED":
                self._objects[prefix].pop(ev.key, None)
            else:
                self._objects[prefix][ev.key] = ev.object
            self._pending_rv = max(self._pending_rv, ev.rv)
            self._dirty.set()

        await follow(self.store, prefix, rv, apply, self._relist)

    async def _rebuilder(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._rebuild(self._pending_rv)
            await asyncio.sleep(0)  # coalesce a burst of events into one rebuild


async def follow(store: Store, prefix: str, rv: int, apply: Callable[[WatchEvent], None],
                 relist: Callable[[], Awaitable[int]]) -> None:
    """Feed every change under `prefix` after `rv` to `apply`, forever: when the watch ends (an
    error, compacted history, the store closing it) `relist` rebuilds the state and returns the
    revision to watch on from, a second later. Cancel the task to stop."""
    while True:
        try:
            async for ev in store.watch(prefix, rv):
                rv = ev.rv
                apply(ev)
        except asyncio.CancelledError:
            raise
        except Exception:  # store unavailable, history compacted: start over from a list
            log.warning("authorizer watch on %s failed; relisting", prefix, exc_info=True)
        await asyncio.sleep(1)
        with contextlib.suppress(Exception):
            rv = await relist()


def _key(obj: Obj, prefix: str) -> str:
    ns, name = _meta(obj, "namespace"), _meta(obj, "name")
    return f"{prefix}{ns}/{name}" if ns else f"{prefix}{name}"


def _role_attributes(user: UserInfo, rule: Obj, namespace: str) -> Iterable[Attributes]:
    """Every (verb, group, resource, name) a rule grants, as requests `user` would make."""
    verbs = [v for v in rule.get("verbs") or [] if isinstance(v, str)]
    urls = [u for u in rule.get("nonResourceURLs") or [] if isinstance(u, str)]
    for url in urls:
        for verb in verbs:
            yield Attributes(user, verb, resource_request=False, path=url)
    if urls:
        return
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            res, _, sub = str(resource).partition("/")
            for name in rule.get("resourceNames") or [""]:
                for verb in verbs:
                    yield Attributes(user, verb, namespace=namespace, group=str(group), resource=res,
                                     subresource=sub, name=str(name))


def ungranted(authorizer: Authorizer, user: UserInfo, rules: Iterable[Obj], namespace: str) -> list[Obj]:
    """The rules (one verb/group/resource each) `user` does not hold itself: what creating a
    role with `rules`, or a binding to it, would escalate to (Kubernetes' ConfirmNoEscalation,
    literal: a `*` is covered only by a `*`)."""
    missing: list[Obj] = []
    for rule in rules:
        if not isinstance(rule, dict):
            continue
        for a in _role_attributes(user, rule, namespace):
            if not authorizer.authorize(a):
                missing.append({"verbs": [a.verb], "nonResourceURLs": [a.path]} if not a.resource_request
                               else {"apiGroups": [a.group], "resources": [
                                   f"{a.resource}/{a.subresource}" if a.subresource else a.resource],
                                     "verbs": [a.verb], **({"resourceNames": [a.name]} if a.name else {})})
        if len(missing) > 20:
            break
    return missing


def role_rules(authorizer: Authorizer, kind: str, namespace: str, name: str) -> list[Obj] | None:
    """The rules of the Role (in `namespace`) or ClusterRole `name` as the authorizer last saw
    them; None when it does not exist."""
    if kind == "ClusterRole":
        obj = authorizer._objects[PREFIXES[1]].get(f"{PREFIXES[1]}{name}")
    else:
        obj = authorizer._objects[PREFIXES[0]].get(f"{PREFIXES[0]}{namespace}/{name}")
    return None if obj is None else list(obj.get("rules") or [])
