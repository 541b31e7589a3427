"""podns' controllers: level-triggered reconcilers, as kube-controller-manager runs them.

Public names: `ControllerManager` and `Options` (run everything, with leader election),
`ALL_CONTROLLERS`, and the controllers themselves for embedding or tests. See README.md and
docs/controllers.md.
"""

from podns.controllers.endpoints.controller import EndpointsController
from podns.controllers.endpointslice.controller import EndpointSliceController
from podns.controllers.gc import GarbageCollector
from podns.controllers.manager import ALL_CONTROLLERS, ControllerManager, Options
from podns.controllers.nodelifecycle import NodeLifecycleController
from podns.controllers.scheduler import Scheduler
from podns.controllers.statefulset.controller import StatefulSetController
from podns.controllers.volumebinder import VolumeBinder

__all__ = [
    "ALL_CONTROLLERS",
    "ControllerManager",
    "EndpointSliceController",
    "EndpointsController",
    "GarbageCollector",
    "NodeLifecycleController",
    "Options",
    "Scheduler",
    "StatefulSetController",
    "VolumeBinder",
]
