"""`ApiServer`: the Kubernetes-compatible API server over one Store, started and stopped in-process.

Start-up: load or create the tokens, the CA, the ServiceAccount token key and the client
certificate towards node agents,
and (with TLS, the default) the serving certificate in the data dir, listen, create the initial
namespaces, resume interrupted namespace cleanups,
and write the admin and read-only kubeconfigs pointing at the bound address, and the
controller manager's and cluster DNS's (their own identities: `podns.api.server.kubeconfig`). Credentials and
certificates are reused across restarts with the same data dir. `stop()` ends open watches
and closes the listener; the store belongs to the caller.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from podns.api.dashboard import ui
from podns.api.handlers import authorization, rbacpolicy, serviceaccounttoken
from podns.api.handlers.eventttl import DEFAULT_EVENT_TTL, EventReaper
from podns.api.handlers.kubernetesservice import KubernetesService, advertise_address, first_address
from podns.api.handlers.namespacelifecycle import NamespaceCleaner
from podns.api.handlers.nodeauthorizer import NodeAuthorizer
from podns.api.handlers.rest import Rest
from podns.api.handlers.serviceaccountadmission import ServiceAccountAdmission
from podns.api.handlers.watchmux import WatchMux, needs_mux
from podns.api.resources.base import ResourceType
from podns.api.resources.registry import REGISTRY, registry_for
from podns.api.resources.service import NODE_PORT_RANGE
from podns.api.server import authentication, certs
from podns.api.server.audit import AuditLog
from podns.api.server.httpapp import create_app
from podns.api.server.kubeconfig import write_component_kubeconfigs, write_kubeconfigs
from podns.store.interface import Store

log = logging.getLogger(__name__)

#: Kubernetes' default --service-cluster-ip-range
#: a loopback range by default: the node agent's ClusterIP proxy listens on each Service's
#: cluster IP, which in loopback pod-network mode must be an address the host can bind
#: (Kubernetes' own default, 10.96.0.0/12, is for clusters with a kube-proxy dataplane)
DEFAULT_SERVICE_CIDR = "127.96.0.0/16"
#: seconds open watches get to finish when the server stops
SHUTDOWN_GRACE = 1.0


@dataclass(slots=True)
class Admission:
    """What `Strategy.admit` hooks get (see `AdmissionContext` in resources/base.py)."""

    store: Store
    service_cidr: str
    node_port_range: tuple[int, int] = NODE_PORT_RANGE


#: generation-0 threshold of the garbage collector in server processes (CPython's default, 700,
#: makes young collections, and the gen-1/gen-2 ones they cascade into, run every few hundred
#: allocations; a list of 10,000 pods allocates ~300,000 containers, and with the watch cache
#: holding as many live objects those collections doubled list latency in bench/api_throughput.py)
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make garbage collection rare in a server process (objects are mostly acyclic JSON trees
    freed by reference counting) and move start-up objects out of the collector's way."""
    import gc

    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    gc.freeze()


def parse_addr(addr: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"address {addr!r} is not host:port")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def url_host(host: str) -> str:
    """The host as it appears in a URL (IPv6 in brackets; wildcard -> loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    except ValueError:
        pass
    return host


class ApiServer:
    """The API server. `await start()`, then `url`, `kubeconfig`, `tokens`; `await stop()`."""

    def __init__(
        self, store: Store, data_dir: Path | str, addr: str = "127.0.0.1:6443", *,
        tls: bool = True, service_cidr: str = DEFAULT_SERVICE_CIDR,
        types: list[ResourceType] | None = None, dns_metrics_url: str | None = None,
        shared_watch: bool | None = None, event_ttl: float = DEFAULT_EVENT_TTL,
        audit_log: str | None = None, node_port_range: tuple[int, int] = NODE_PORT_RANGE,
    ) -> None:
        self.store = store
        self.data_dir = Path(data_dir)
        self.host, self.port = parse_addr(addr)
        self.tls = tls
        self.registry = registry_for(types) if types is not None else REGISTRY
        self.service_cidr = service_cidr
        self.rest = Rest(store, Admission(store, service_cidr, node_port_range))
        #: keeps Service default/kubernetes and its endpoints (this server among them), from start()
        self.kubernetes_service: KubernetesService | None = None
        accounts = self.registry.lookup("", "v1", "serviceaccounts")
        if accounts is not None:
            self.rest.pod_admission = ServiceAccountAdmission(self.rest, accounts).admit
        self.cleaner = NamespaceCleaner(self.rest, self.registry)
        self.rest.on_namespace_deleting = self.cleaner.start
        #: deletes Events older than `event_ttl` seconds (kube-apiserver's --event-ttl)
        self.event_reaper = EventReaper(store, event_ttl)
        #: one store watch per resource shared by API watches, for stores that open a backend
        #: stream per watch (etcd); `shared_watch` forces it on or off
        use_mux = needs_mux(store) if shared_watch is None else shared_watch
        self.mux = WatchMux(store) if use_mux else None
        #: the dashboard's options; `dns_metrics_url` may be set after start()
        self.ui = ui.UiOptions(dns_metrics_url=dns_metrics_url)
        #: RBAC over the store's Role/ClusterRole/RoleBinding/ClusterRoleBinding objects
        self.authorizer = authorization.Authorizer(store)
        #: the Node authorizer, asked before RBAC for node agents' requests
        self.node_authorizer = NodeAuthorizer(store)
        self.authorizer.front = self.node_authorizer
        #: the components' kubeconfigs written at start (file name -> path; empty without TLS)
        self.component_kubeconfigs: dict[str, Path] = {}
        self.tokens: authentication.Tokens | None = None
        #: signs and checks ServiceAccount tokens (the data dir's `sa.key`), from start()
        self.sa_signer: serviceaccounttoken.Signer | None = None
        self.kubeconfig: Path | None = None
        self.readonly_kubeconfig: Path | None = None
        self._runner: web.AppRunner | None = None
        self._ready = False
        #: `--audit-log`: a file (or `-`) getting one JSON line per request (podns.api.server.audit)
        self.audit_log = audit_log
        self._audit: AuditLog | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{url_host(self.host)}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """Where the web dashboard is served."""
        return self.url + "/ui/"

    async def start(self) -> None:
        """Listen and serve; raises OSError when the address is taken."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.tokens = authentication.load_or_create_tokens(self.data_dir)
        ssl_ctx = None
        paths = None
        if self.tls:
            paths = certs.ensure_certs(self.data_dir, self.host,
                                       extra_ips=(first_address(self.service_cidr),))
            ssl_ctx = certs.server_ssl_context(paths)
        else:
            certs.ensure_ca(self.data_dir)
        self.sa_signer = signer = serviceaccounttoken.Signer(serviceaccounttoken.load_key(
            certs.ensure_service_account_key(self.data_dir)))
        if self.audit_log is not None and self._audit is None:
            self._audit = AuditLog(self.audit_log)
        app = create_app(self.rest, self.registry, self.tokens, ready=lambda: self._ready,
                         ui_options=self.ui, mux=self.mux,
                         node_tls=certs.kubelet_client_ssl_context(self.data_dir), audit=self._audit,
                         authorizer=self.authorizer, sa_signer=signer)
        runner = web.AppRunner(app, handler_cancellation=True, access_log=None,
                               shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        self._runner = runner
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            await runner.cleanup()
            raise
        self.port = sock.getsockname()[1]
        site = web.SockSite(runner, sock, ssl_context=ssl_ctx)
        await site.start()
        await self.cleaner.ensure_initial()
        await self.cleaner.resume()
        await rbacpolicy.reconcile(self.rest, self._kind("ClusterRole"), self._kind("ClusterRoleBinding"))
        await self.authorizer.start()
        await self.node_authorizer.start()
        self.kubernetes_service = KubernetesService(
            self.rest, self.registry.lookup, service_cidr=self.service_cidr,
            address=advertise_address(self.host), port=self.port)
        self.kubernetes_service.start()
        self.event_reaper.start()
        self.write_kubeconfigs()
        self._ready = True
        log.info("API server listening on %s", self.url)

    def write_kubeconfigs(self, servers: list[str] | None = None) -> None:
        """(Re)write the admin and read-only kubeconfigs and, with TLS, the components' (client
        certificates from the cluster CA); `servers`: every API server of the cluster, this
        one first (None: only this one)."""
        assert self.tokens is not None
        ca = self.data_dir / "ca.crt" if self.tls else None
        if self.tls:  # first: whoever waits for the admin kubeconfig finds these ready too
            self.component_kubeconfigs = write_component_kubeconfigs(self.data_dir, self.url, servers)
        self.kubeconfig, self.readonly_kubeconfig = write_kubeconfigs(
            self.data_dir, self.url, ca, self.tokens.admin, self.tokens.readonly, servers=servers)

    def _kind(self, kind: str) -> ResourceType:
        rt = REGISTRY.by_kind("rbac.authorization.k8s.io", kind)
        assert rt is not None, kind
        return rt

    async def stop(self) -> None:
        """Stop serving (open watches end); the store stays open."""
        self._ready = False
        if self.kubernetes_service is not None:
            await self.kubernetes_service.stop()
            self.kubernetes_service = None
        await self.cleaner.stop()
        await self.event_reaper.stop()
        await self.authorizer.stop()
        await self.node_authorizer.stop()
        if self.mux is not None:
            await self.mux.close()
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None
        if self._audit is not None:
            self._audit.close()
            self._audit = None
