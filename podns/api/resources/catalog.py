"""The served resource types, indexed the way the request machinery looks them up.

The list itself belongs to `podns.api.resources.registry` (the api-kinds side of the
contract); this module only indexes whatever `ResourceType`s it is given by
(group, version, plural) so the generic handlers never need to know a kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from podns.api.resources.base import ResourceType


class Catalog:
    """Lookup of served `ResourceType`s."""

    def __init__(self, types: Iterable[ResourceType]) -> None:
        self._types = list(types)
        self._by_gvr = {(t.group, t.version, t.resource): t for t in self._types}

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(self._types)

    def lookup(self, group: str, version: str, resource: str) -> ResourceType | None:
        """The type served at /<group>/<version>/<resource>, or None."""
        return self._by_gvr.get((group, version, resource))

    def namespaced(self) -> list[ResourceType]:
        """One type per namespaced store resource (what deleting a namespace must clear)."""
        seen: dict[str, ResourceType] = {}
        for t in self._types:
            if t.namespaced:
                seen.setdefault(t.store_resource, t)
        return list(seen.values())


def served_types() -> list[ResourceType]:
    """The types `podns.api.resources.registry.REGISTRY` serves.

    Accepts the registry as an iterable of ResourceType, or an object with `all()`/`types`.
    """
    from podns.api.resources import registry  # the api-kinds side of the contract

    reg = registry.REGISTRY
    for attr in ("all", "types", "resource_types"):
        got = getattr(reg, attr, None)
        if got is not None:
            return list(got() if callable(got) else got)
    return list(reg)
