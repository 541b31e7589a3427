"""The Kubernetes API client every podns component uses (and only this package speaks HTTP to it).

Contract (other components code against exactly these names; see each module for details):

- `podns.kube.resources`: `Resource(group, version, plural, kind, namespaced)` constants
  `NAMESPACES, PODS, SERVICES, ENDPOINTS, ENDPOINTSLICES, STATEFULSETS, CONTROLLERREVISIONS,
  NODES, LEASES, EVENTS, PERSISTENTVOLUMECLAIMS, CONFIGMAPS`.
- `podns.kube.config`: `load_kubeconfig(path) -> Config` (servers, CA, token, insecure),
  `in_cluster_config()` (a pod's ServiceAccount), `load_config()` (either, client-go's order).
- `podns.kube.client.Client` (async): `Client.from_kubeconfig(path)`, `get`, `list`, `create`,
  `update`, `update_status`, `patch`, `delete`, `watch`, `request`, `close`; errors from
  `podns.kube.errors` mirror the Kubernetes Status (`APIError` with `.status`, `.code`,
  `.reason`, `.message`; `NotFound`, `AlreadyExists`, `Conflict`, `Gone`, `Invalid`, ...).
- `podns.kube.informer.Informer`: list + watch + local cache + resume/relist, indexers,
  handlers, `has_synced`, `wait_synced()`, `run()`.
- `podns.kube.workqueue.WorkQueue`: dedup, rate-limited retries, one worker per key at a time.
- `podns.kube.leaderelection.LeaderElector`: Lease-based leader election.
"""

from podns.kube import errors, resources
from podns.kube.client import Client, WatchEvent
from podns.kube.config import Config, in_cluster_config, load_config, load_kubeconfig
from podns.kube.errors import (
    AlreadyExists,
    APIError,
    Conflict,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    TransportError,
)
from podns.kube.informer import Informer
from podns.kube.leaderelection import LeaderElector
from podns.kube.workqueue import WorkQueue, run_workers

__all__ = [
    "APIError",
    "AlreadyExists",
    "Client",
    "Config",
    "Conflict",
    "Gone",
    "Informer",
    "Invalid",
    "KubeError",
    "LeaderElector",
    "NotFound",
    "TransportError",
    "WatchEvent",
    "WorkQueue",
    "errors",
    "in_cluster_config",
    "load_config",
    "load_kubeconfig",
    "resources",
    "run_workers",
]
