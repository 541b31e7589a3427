"""podns.lb: client-side discovery and load balancing for applications.

    from podns import lb
    async with lb.Balancer("db-service", port="postgres", policy="least_outstanding",
                           source=lb.DNS(server="127.0.0.1:1053")) as pool:
        ep = pool.pick()

Public names: `Balancer`, `SyncBalancer`, sources `DNS`, `Watch`, `Static`, `Endpoint`,
`TCPCheck`, `Hooks`, `OutlierConfig`, `conninfo` (libpq), and the errors. The httpx transports
live in `podns.lb.transport` (imported on demand, since httpx is optional). Nothing inside
podns imports this package; it depends on `podns.kube` only for the watch source.
"""

from podns.lb.balancer import Balancer, Hooks, TCPCheck
from podns.lb.endpoint import Endpoint
from podns.lb.errors import ConnectError, EndpointNotFound, LBError, NoEndpoints, ResolutionError
from podns.lb.health import OutlierConfig
from podns.lb.libpq import conninfo
from podns.lb.policies import POLICIES
from podns.lb.sources import DNS, Static, Watch
from podns.lb.syncbalancer import SyncBalancer

__all__ = [
    "DNS",
    "POLICIES",
    "Balancer",
    "ConnectError",
    "Endpoint",
    "EndpointNotFound",
    "Hooks",
    "LBError",
    "NoEndpoints",
    "OutlierConfig",
    "ResolutionError",
    "Static",
    "SyncBalancer",
    "TCPCheck",
    "Watch",
    "conninfo",
]
