"""What the API server knows about one kind: its names, scope, and per-kind behaviour hooks.

This is the contract between the generic request machinery (`podns.api` handlers: routing,
CRUD, patch, watch) and the per-kind modules in `podns.api.resources` (defaulting,
validation, status/spec separation, printer columns, field selectors). The handlers never
branch on a kind's name; everything kind-specific lives behind `Strategy`.

Hooks mutate the dict they are given (it is always a private copy) and return validation
failures as `FieldError`s; the handlers turn a non-empty list into a 422 `Invalid` Status
with `details.causes[].field` set to each error's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from podns.objects.selectors import field_path_value

if TYPE_CHECKING:
    from podns.store.interface import Store

Obj = dict[str, Any]


class AdmissionContext(Protocol):
    """What async admission hooks may use: the store (for reservations such as cluster IPs,
    kept under keys outside every resource prefix, e.g. `_alloc/serviceips/10.96.0.10`) and the
    server's settings: `service_cidr` is one CIDR or two of different IP families,
    comma-separated, primary first (`podns.objects.cidrs.parse_cidrs`); `node_port_range` the
    first and last node port (`--service-node-port-range`)."""

    store: Store
    service_cidr: str
    node_port_range: tuple[int, int]


class AdmissionDenied(Exception):
    """An admission hook refuses the write as a whole (Kubernetes' `admission.NewForbidden`):
    the handlers answer 403 Forbidden `<resource> "<name>" is forbidden: <message>`."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: `field` is the Kubernetes path (`spec.ports[0].port`), `reason` the
    Kubernetes cause type (`FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`,
    `FieldValueDuplicate`, `FieldValueForbidden`, `FieldValueTooLong`), `message` the detail as
    Kubernetes words it (`Invalid value: 70000: must be between 1 and 65535, inclusive`)."""

    field: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Column:
    """A server-side printing column (meta.k8s.io/v1 TableColumnDefinition)."""

    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0


class Strategy:
    """Per-kind behaviour. The defaults suit a kind with no spec/status split and no rules."""

    #: subresources this kind serves besides the main resource ("status", "scale", ...)
    subresources: tuple[str, ...] = ()
    #: fields usable in fieldSelector besides metadata.name / metadata.namespace
    selectable_fields: tuple[str, ...] = ()
    #: whether Tables start with a Name column (Events put NAME last, as a wide column)
    name_column: bool = True
    #: whether a PUT on a missing object creates it (kube-apiserver's `AllowCreateOnUpdate`:
    #: true for Services, Endpoints, Events and Leases; false for every other kind podns serves)
    allow_create_on_update: bool = False
    #: a kind served in several versions is stored in one (its preferred version); the Strategy
    #: of another version names the stored apiVersion here and converts with `to_storage` /
    #: `from_storage`, while every other hook works on stored-version objects. Empty: this
    #: version is the stored one
    storage_api_version: str = ""

    def to_storage(self, obj: Obj) -> Obj:
        """A body of this version in the stored version (a copy; identity by default)."""
        return obj

    def from_storage(self, obj: Obj) -> Obj:
        """A stored object as this version shows it (a copy; identity by default)."""
        return obj

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create (e.g. most of `status`)."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """On the main resource: keep `old`'s status (when the kind has a status subresource)."""

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """On `/status`: keep `old`'s spec and metadata except labels/annotations."""

    def default(self, obj: Obj) -> None:
        """Fill in server-side defaults (Service clusterIP/type/protocol, StatefulSet strategy)."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """Validate a whole object (on create and update)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Rules that compare against the stored object (immutable fields)."""
        return []

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        """Whether `metadata.generation` must be bumped: by default any change outside
        metadata and status."""
        strip = ("metadata", "status", "kind", "apiVersion")
        return {k: v for k, v in new.items() if k not in strip} != {
            k: v for k, v in old.items() if k not in strip
        }

    async def admit(self, obj: Obj, old: Obj | None, ctx: AdmissionContext) -> list[FieldError]:
        """Last step before a create (`old` is None) or update is written, after validation:
        allocate what the object needs (cluster IP, node ports). Allocations must be released
        again by `release` when the write fails or the object is deleted. Raises AdmissionDenied
        to refuse the write as a whole (403) rather than a field of it (422)."""
        return []

    async def release(self, obj: Obj, ctx: AdmissionContext) -> None:
        """Give back what `admit` allocated for `obj` (after deletion or a failed write)."""

    def unknown_fields(self, obj: Obj) -> list[str]:
        """Paths of fields `obj` carries that the kind's schema does not know (`spec.foo`,
        `spec.containers[0].imagePullPolcy`), for `fieldValidation=Strict|Warn`. Called by the
        generic handlers before defaulting. The default knows no schema and reports nothing."""
        return []

    def deletion_grace_seconds(self, obj: Obj, requested: int | None) -> int:
        """Seconds of graceful deletion for a DELETE with `gracePeriodSeconds=requested` (None:
        not given). 0 deletes at once (when no finalizers hold the object); more sets
        `deletionTimestamp`/`deletionGracePeriodSeconds` and leaves the object for its owner
        (the node agent for a scheduled Pod) to finish. Default: immediate, as for most kinds."""
        return 0

    def columns(self) -> list[Column]:
        """Table columns after Name (Kubernetes' printers); Age is appended by the caller when
        absent."""
        return []

    def cells(self, obj: Obj) -> list[Any]:
        """One row's cells, matching `columns()` (without the Name cell)."""
        return []

    def field_value(self, obj: Obj, path: str) -> str | None:
        """The value of a selectable field as a string, or None when the path is unknown."""
        return field_path_value(obj, path)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One served resource: REST names, scope, discovery facts and its Strategy."""

    group: str  # "" for the core group
    version: str
    resource: str  # plural, lower case: "pods"
    kind: str  # "Pod"
    singular: str
    namespaced: bool
    strategy: Strategy = field(default_factory=Strategy)
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch",
    )

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def store_resource(self) -> str:
        """The first segment of store keys: `pods`, `statefulsets.apps`."""
        return f"{self.resource}.{self.group}" if self.group else self.resource
