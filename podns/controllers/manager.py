"""The controller manager: every podns controller in one process, as kube-controller-manager.

`ControllerManager.run()` runs the controllers until cancelled. With leader election (the
default for `podns controller-manager`), several managers may run against one API server and
exactly one acts at a time: each contends for the Lease `kube-system/kube-controller-manager`,
and only the holder runs controllers; a manager that loses the Lease stops its controllers
(cancelling them) and contends again. Every leadership term starts from fresh informers, so a
new leader lists the current state and converges (level-triggered), whatever the previous leader
left half-done.

Controllers: `endpointslice`, `endpoints`, `statefulset`, `deployment`, `replicaset`,
`daemonset`, `job`, `cronjob`, `disruption`, `scheduler`, `nodelifecycle`, `nodeipam` (pod
CIDRs of Nodes from `--cluster-cidr`), `garbagecollector`, `volumebinder`, `serviceaccount`,
`root-ca-cert-publisher` (names as `--controllers` takes them; all by default). They share one
set of informers; each records events under its Kubernetes component name (`statefulset-controller`,
`deployment-controller`, `replicaset-controller`, `daemonset-controller`, `job-controller`,
`cronjob-controller`, `endpoint-slice-controller`, `default-scheduler`, `node-controller`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from podns.controllers import workerloop
from podns.controllers.clusterroleaggregation import ClusterRoleAggregationController
from podns.controllers.cronjob.controller import CronJobController
from podns.controllers.daemonset.controller import DaemonSetController
from podns.controllers.deployment.controller import DeploymentController
from podns.controllers.disruption.controller import DisruptionController
from podns.controllers.endpoints.controller import EndpointsController
from podns.controllers.endpointslice.controller import EndpointSliceController
from podns.controllers.endpointslice.reconciler import DEFAULT_MAX_ENDPOINTS_PER_SLICE
from podns.controllers.gc import GarbageCollector
from podns.controllers.job.controller import JobController
from podns.controllers.nodeipam import (
    DEFAULT_CLUSTER_CIDR,
    DEFAULT_MASK_V4,
    DEFAULT_MASK_V6,
    NodeIPAMController,
    check_mask,
    parse_cluster_cidrs,
)
from podns.controllers.nodelifecycle import DEFAULT_GRACE_PERIOD, NodeLifecycleController
from podns.controllers.podautoscaler import HorizontalPodAutoscalerController
from podns.controllers.replicaset.controller import ReplicaSetController, ReplicationManager
from podns.controllers.scheduler import Scheduler
from podns.controllers.serviceaccounts import RootCACertPublisher, ServiceAccountsController
from podns.controllers.sharedinformers import SharedInformers
from podns.controllers.statefulset.controller import StatefulSetController
from podns.controllers.volumebinder import VolumeBinder
from podns.kube import errors
from podns.kube.client import Client
from podns.kube.events import EventRecorder
from podns.kube.leaderelection import LeaderElector
from podns.kube.resources import NAMESPACES

log = logging.getLogger(__name__)

ALL_CONTROLLERS = ("endpointslice", "endpoints", "statefulset", "deployment", "replicaset", "daemonset",
                   "job", "cronjob", "disruption", "scheduler", "nodelifecycle", "nodeipam",
                   "garbagecollector", "volumebinder", "serviceaccount", "root-ca-cert-publisher",
                   "clusterrole-aggregation", "replicationcontroller", "horizontalpodautoscaling")
LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-controller-manager"
#: how long to wait for the first list of every informer before starting workers anyway
#: (a resource the server does not serve must not stop the others)
SYNC_TIMEOUT = 10.0


@dataclass(slots=True)
class Options:
    """What `podns controller-manager` / `podns up` may tune (few knobs, on purpose)."""

    controllers: Sequence[str] = ALL_CONTROLLERS
    node_grace_period: float = DEFAULT_GRACE_PERIOD
    max_endpoints_per_slice: int = DEFAULT_MAX_ENDPOINTS_PER_SLICE
    #: node IPAM: the range Nodes' pod CIDRs come from, and the block size per node and family
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_cidr_mask_size: int = DEFAULT_MASK_V4
    node_cidr_mask_size_ipv6: int = DEFAULT_MASK_V6
    leader_elect: bool = True
    #: Lease timing (seconds): client-go / kube-controller-manager defaults
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    identity: str = field(default_factory=lambda: default_identity())


class ControllerManager:
    """Runs the selected controllers (with leader election when `options.leader_elect`)."""

    def __init__(self, client: Client, options: Options | None = None) -> None:
        self.client = client
        self.options = options or Options()
        validate(self.options)
        #: the controllers of the current leadership term (empty while not leading)
        self.controllers: dict[str, workerloop.Controller] = {}
        self.informers: SharedInformers | None = None
        self.leading = asyncio.Event()

    def build(self, informers: SharedInformers, recorder: Callable[[str], EventRecorder]
              ) -> dict[str, workerloop.Controller]:
        """Create the selected controllers on shared informers (no I/O yet); `recorder(component)`
        gives the event recorder of a component."""
        opts, client = self.options, self.client
        makers: dict[str, Callable[[], workerloop.Controller]] = {
            "endpointslice": lambda: EndpointSliceController(
                client, informers, recorder=recorder("endpoint-slice-controller"),
                max_endpoints_per_slice=opts.max_endpoints_per_slice),
            "endpoints": lambda: EndpointsController(client, informers),
            "statefulset": lambda: StatefulSetController(
                client, informers, recorder=recorder("statefulset-controller")),
            "deployment": lambda: DeploymentController(
                client, informers, recorder=recorder("deployment-controller")),
            "replicaset": lambda: ReplicaSetController(
                client, informers, recorder=recorder("replicaset-controller")),
            "replicationcontroller": lambda: ReplicationManager(
                client, informers, recorder=recorder("replication-controller")),
            "horizontalpodautoscaling": lambda: HorizontalPodAutoscalerController(
                client, informers, recorder=recorder("horizontal-pod-autoscaler")),
            "daemonset": lambda: DaemonSetController(
                client, informers, recorder=recorder("daemonset-controller")),
            "disruption": lambda: DisruptionController(client, informers),
            "job": lambda: JobController(client, informers, recorder=recorder("job-controller")),
            "cronjob": lambda: CronJobController(
                client, informers, recorder=recorder("cronjob-controller")),
            "scheduler": lambda: Scheduler(client, informers, recorder=recorder("default-scheduler")),
            "nodelifecycle": lambda: NodeLifecycleController(
                client, informers, recorder=recorder("node-controller"), grace_period=opts.node_grace_period),
            "nodeipam": lambda: NodeIPAMController(
                client, informers, cluster_cidr=opts.cluster_cidr, mask_v4=opts.node_cidr_mask_size,
                mask_v6=opts.node_cidr_mask_size_ipv6, recorder=recorder("node-ipam-controller")),
            "garbagecollector": lambda: GarbageCollector(client, informers),
            "volumebinder": lambda: VolumeBinder(client, informers),
            "clusterrole-aggregation": lambda: ClusterRoleAggregationController(client, informers),
            "serviceaccount": lambda: ServiceAccountsController(client, informers),
            "root-ca-cert-publisher": lambda: RootCACertPublisher(
                client, informers, (client.config.ca_data or b"").decode()),
        }
        return {name: makers[name]() for name in ALL_CONTROLLERS if name in opts.controllers}

    async def run_controllers(self) -> None:
        """One leadership term: start informers, wait for their first list, run every
        controller's workers until cancelled."""
        informers = SharedInformers(self.client)
        recorders: list[EventRecorder] = []

        def recorder(component: str) -> EventRecorder:
            recorders.append(EventRecorder(self.client, component, instance=self.options.identity))
            return recorders[-1]

        self.controllers = self.build(informers, recorder)
        self.informers = informers
        informers.start()
        try:
            try:
                await informers.wait_synced(SYNC_TIMEOUT)
            except TimeoutError:
                log.warning("not every informer synced within %.0fs; starting controllers anyway",
                            SYNC_TIMEOUT)
            self.leading.set()
            await asyncio.gather(*(c.run() for c in self.controllers.values()))
        finally:
            self.leading.clear()
            self.controllers = {}
            self.informers = None
            for r in recorders:
                await r.stop()
            await informers.stop()

    async def _ensure_lease_namespace(self) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": LEASE_NAMESPACE}}
        with contextlib.suppress(errors.AlreadyExists, errors.Forbidden):
            await self.client.create(NAMESPACES, body)

    async def run(self) -> None:
        """Run until cancelled: with leader election, only while holding the Lease."""
        if not self.options.leader_elect:
            await self.run_controllers()
            return
        while True:
            try:
                await self._ensure_lease_namespace()
                break
            except errors.KubeError as exc:
                log.warning("creating namespace %s: %s; retrying", LEASE_NAMESPACE, exc)
                await asyncio.sleep(1.0)
        await self.elector().run()

    def elector(self) -> LeaderElector:
        """The Lease elector for this manager; ValueError for inconsistent timings."""
        return LeaderElector(
            self.client, LEASE_NAMESPACE, LEASE_NAME, self.options.identity,
            lease_duration=self.options.lease_duration, renew_deadline=self.options.renew_deadline,
            retry_period=self.options.retry_period, on_started_leading=self.run_controllers,
            on_new_leader=lambda who: log.info("controller-manager leader is now %s", who),
        )


def validate(options: Options) -> None:
    """ValueError naming the flag when `options` cannot run (checked before anything starts)."""
    unknown = set(options.controllers) - set(ALL_CONTROLLERS)
    if unknown:
        raise ValueError(f"unknown controllers: {', '.join(sorted(unknown))}"
                         f" (known: {', '.join(ALL_CONTROLLERS)})")
    masks = {4: options.node_cidr_mask_size, 6: options.node_cidr_mask_size_ipv6}
    for cidr in parse_cluster_cidrs(options.cluster_cidr):
        check_mask(cidr, masks[cidr.version])


def default_identity() -> str:
    """A unique identity for this process: host name, pid and a random suffix."""
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
