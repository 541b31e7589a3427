"""Store errors: one hierarchy, one meaning each, mapped 1:1 to HTTP statuses by the API.

    StoreError
    ├── NotFound        (404) the key does not exist
    ├── AlreadyExists   (409) create of an existing key
    ├── Conflict        (409) compare-and-swap on resourceVersion failed
    ├── Expired         (410) the requested revision was compacted away
    ├── Invalid         (400) the object cannot be stored (not representable as JSON)
    │   └── TooLarge    (413) the object is over the backend's size limit (etcd's 1.5 MiB)
    └── Unavailable     (503) the backend cannot be reached or has no quorum
"""

from __future__ import annotations


class StoreError(Exception):
    """Root of every error a Store raises."""


class NotFound(StoreError):
    """The key does not exist."""


class AlreadyExists(StoreError):
    """A create found the key already present."""


class Conflict(StoreError):
    """The object changed since the revision the caller read (optimistic concurrency)."""


class Expired(StoreError):
    """The requested revision is older than the history the store keeps."""


class Invalid(StoreError):
    """The object cannot be stored: not representable as JSON (an integer beyond 64 bits, a
    non-string key, an unpaired surrogate)."""


class TooLarge(Invalid):
    """The object is over the backend's size limit (etcd's request limit, gRPC's message
    limit); the API answers 413 RequestEntityTooLarge."""


class Unavailable(StoreError):
    """The backend cannot serve the request now (unreachable, no quorum, timed out)."""
