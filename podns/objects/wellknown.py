"""Well-known labels and annotations, spelled once (Kubernetes
`k8s.io/api/core/v1/well_known_labels.go`, `discovery/v1/well_known_labels.go`,
`apps/v1/types.go`).

Every component that writes or selects on one of these keys imports it from here, so the
EndpointSlice controller, the DNS server, the node proxy and `podns.lb` cannot drift apart.
"""

from __future__ import annotations

# --- EndpointSlices (discovery.k8s.io) -------------------------------------------------------

#: The label naming the Service a slice belongs to (read by DNS, kube-proxy, kubectl describe).
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
#: The label saying which controller owns a slice; slices without our value are left alone.
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
#: Set on headless Services' slices and Endpoints, as Kubernetes does.
HEADLESS_LABEL = "service.kubernetes.io/headless"
#: Time of the last pod/Service change reflected by an Endpoints/EndpointSlice write (the
#: Kubernetes SLI annotation the DNS server measures propagation from).
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
#: Kubernetes truncates Endpoints at 1000 addresses and says so with this annotation.
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"

# --- nodes and topology ----------------------------------------------------------------------

HOSTNAME_LABEL = "kubernetes.io/hostname"
OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
#: The deprecated spellings kubelets still set beside OS_LABEL / ARCH_LABEL.
BETA_OS_LABEL = "beta.kubernetes.io/os"
BETA_ARCH_LABEL = "beta.kubernetes.io/arch"
ZONE_LABEL = "topology.kubernetes.io/zone"
#: `node-role.kubernetes.io/<role>` labels give a node its roles (kubectl get nodes' ROLES)
NODE_ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
#: the older spelling: the role is the label's value
LEGACY_NODE_ROLE_LABEL = "kubernetes.io/role"

# --- namespaces and volumes ------------------------------------------------------------------

#: set by the API server on every Namespace to its own name (selectable by name)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: the beta annotation naming a claim's StorageClass, read where `spec.storageClassName` is unset
BETA_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"

# --- StatefulSets and ControllerRevisions (apps/v1) ------------------------------------------

#: The pod and revision label holding the revision name.
REVISION_LABEL = "controller-revision-hash"
#: Kubernetes' label on revisions for the raw hash.
HASH_LABEL = "controller.kubernetes.io/hash"
#: The pod label holding the pod's own name (lets a Service select one StatefulSet pod).
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
#: The pod label holding the pod's ordinal.
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

# --- ServiceAccounts in pods -----------------------------------------------------------------

#: Where a pod's ServiceAccount token, ca.crt and namespace are mounted (client-go's
#: rest.InClusterConfig and every official client read them there).
SERVICE_ACCOUNT_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Loopback mode has no mount namespace: the node agent gives a container that mounts the
#: ServiceAccount volume its directory in this variable, and `podns.kube`'s in-cluster config
#: looks there first.
SERVICE_ACCOUNT_DIR_ENV = "PODNS_SERVICE_ACCOUNT_DIR"

# --- the cluster's service range ---------------------------------------------------------------

#: On Service default/kubernetes: the API servers' `--service-cidr` (one CIDR, or an IPv4 and an
#: IPv6 one, primary first). Node agents learn the range from it, as kube-proxy reads Kubernetes
#: 1.33's ServiceCIDR object `kubernetes` (which podns does not serve yet).
SERVICE_CIDR_ANNOTATION = "podns.io/service-cidr"
