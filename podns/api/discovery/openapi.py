"""OpenAPI documents: v3 (index + one document per group-version) and a protobuf v2.

What kubectl needs from them:
- `apply`/`create`/`edit` with the default `--validate=strict` look, for the manifest's
  group-version-kind, for a PATCH operation carrying `x-kubernetes-group-version-kind` and a
  `fieldValidation` query parameter; finding one, they leave validation to the server
  (`fieldValidation=Strict`). kubectl 1.29+ read OpenAPI v3; 1.27/1.28 read only v2, and only
  as protobuf (`gnostic openapi_v2.Document`), which `openapi_v2_protobuf` hand-encodes.
- `kubectl explain` and apply's strategic-merge patch metadata read the v3 component schemas,
  generated here from `podns.api.resources.schema` (with `x-kubernetes-patch-merge-key` on
  keyed lists), the same tables that drive Strict field validation.
The v2 document has paths only (no definitions): kubectl then falls back to its compiled-in
types for patch strategy, and `kubectl explain` of 1.27/1.28 (which reads v3 by default) is
unaffected. Pure functions; the HTTP layer serves the bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from functools import cache

import orjson

from podns.api.resources import schema
from podns.api.resources.base import Obj, ResourceType
from podns.api.resources.registry import REGISTRY, Registry, registry_for, schema_type

#: what kubectl asks for; the answer is labelled octet-stream as kube-apiserver does (Go's
#: media-type parser rejects the '@' of the requested type)
V2_PROTOBUF_ACCEPT = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
V2_PROTOBUF = "application/octet-stream"
V3_JSON = "application/json"
KUBERNETES_VERSION = "v1.33.0"
_REF = "#/components/schemas/"
PATCH_SCHEMA = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
PATCH_CONTENT_TYPES = (
    "application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)

#: one-line descriptions that `kubectl explain <kind>` prints
KIND_DESCRIPTIONS = {
    "core.v1.Namespace": "Namespace provides a scope for Names. Use of multiple namespaces is optional.",
    "core.v1.Pod": (
        "Pod is a collection of containers that can run on a host. This resource is created by "
        "clients and scheduled onto hosts."
    ),
    "core.v1.Service": (
        "Service is a named abstraction of software service (for example, mysql) consisting of local "
        "port (for example 3306) that the proxy listens on, and the selector that determines which pods "
        "will answer requests sent through the proxy."
    ),
    "core.v1.ServiceSpec": "ServiceSpec describes the attributes that a user creates on a service.",
    "core.v1.Endpoints": "Endpoints is a collection of endpoints that implement the actual service.",
    "core.v1.Node": (
        "Node is a worker node in Kubernetes. Each node will have a unique identifier in the cache."
    ),
    "core.v1.Event": "Event is a report of an event somewhere in the cluster.",
    "core.v1.ConfigMap": "ConfigMap holds configuration data for pods to consume.",
    "autoscaling.v2.HorizontalPodAutoscaler": (
        "HorizontalPodAutoscaler is the configuration for a horizontal pod autoscaler, which "
        "automatically manages the replica count of any resource implementing the scale subresource "
        "based on the metrics specified."
    ),
    "autoscaling.v1.HorizontalPodAutoscaler": "configuration of a horizontal pod autoscaler.",
    "networking.v1.Ingress": (
        "Ingress is a collection of rules that allow inbound connections to reach the endpoints "
        "defined by a backend. An Ingress can be configured to give services externally-reachable "
        "urls, load balance traffic, terminate SSL, offer name based virtual hosting etc."
    ),
    "networking.v1.IngressClass": (
        "IngressClass represents the class of the Ingress, referenced by the Ingress Spec. The "
        "`ingressclass.kubernetes.io/is-default-class` annotation can be used to indicate that an "
        "IngressClass should be considered default. When a single IngressClass resource has this "
        "annotation set to true, new Ingress resources without a class specified will be assigned "
        "this default class."
    ),
    "core.v1.Secret": "Secret holds secret data of a certain type.",
    "core.v1.ServiceAccount": "ServiceAccount binds together: a name, a principal, and a set of secrets.",
    "core.v1.PersistentVolumeClaim": (
        "PersistentVolumeClaim is a user's request for and claim to a persistent volume"
    ),
    "apps.v1.StatefulSet": "StatefulSet represents a set of pods with consistent identities.",
    "apps.v1.ControllerRevision": (
        "ControllerRevision implements an immutable snapshot of state data."
    ),
    "apps.v1.Deployment": "Deployment enables declarative updates for Pods and ReplicaSets.",
    "apps.v1.DeploymentSpec": (
        "DeploymentSpec is the specification of the desired behavior of the Deployment."
    ),
    "apps.v1.DeploymentStrategy": "DeploymentStrategy describes how to replace existing pods with new ones.",
    "apps.v1.RollingUpdateDeployment": "Spec to control the desired behavior of rolling update.",
    "apps.v1.DeploymentStatus": "DeploymentStatus is the most recently observed status of the Deployment.",
    "apps.v1.ReplicaSet": (
        "ReplicaSet ensures that a specified number of pod replicas are running at any given time."
    ),
    "apps.v1.DaemonSet": "DaemonSet represents the configuration of a daemon set.",
    "policy.v1.PodDisruptionBudget": (
        "PodDisruptionBudget is an object to define the max disruption that can be caused to a "
        "collection of pods"
    ),
    "policy.v1.Eviction": (
        "Eviction evicts a pod from its node subject to certain policies and safety constraints. This "
        "is a subresource of Pod.  A request to cause such an eviction is created by POSTing to "
        ".../pods/<pod name>/evictions."
    ),
    "batch.v1.Job": "Job represents the configuration of a single job.",
    "batch.v1.JobSpec": "JobSpec describes how the job execution will look like.",
    "batch.v1.CronJob": "CronJob represents the configuration of a single cron job.",
    "batch.v1.CronJobSpec": (
        "CronJobSpec describes how the job execution will look like and when it will actually run."
    ),
    "discovery.v1.EndpointSlice": (
        "EndpointSlice represents a subset of the endpoints that implement a service."
    ),
    "coordination.v1.Lease": "Lease defines a lease concept.",
    "node.v1.RuntimeClass": (
        "RuntimeClass defines a class of container runtime supported in the cluster. The "
        "RuntimeClass is used to determine which container runtime is used to run all containers "
        "in a pod."
    ),
    "autoscaling.v1.Scale": "Scale represents a scaling request for a resource.",
}


#: scalar types Kubernetes describes by reference (so explain prints `<IntOrString>`)
_SHARED_SCALARS: dict[str, tuple[str, Obj]] = {
    "int-or-string": ("io.k8s.apimachinery.pkg.util.intstr.IntOrString", {
        "type": "string", "format": "int-or-string",
        "description": "IntOrString is a type that can hold an int32 or a string.",
    }),
    "quantity": ("io.k8s.apimachinery.pkg.api.resource.Quantity", {
        "type": "string",
        "description": "Quantity is a fixed-point representation of a number (e.g. 100m, 1Gi).",
    }),
}


#: descriptions `kubectl explain` prints for the fields podns users touch most (Kubernetes' words)
FIELD_DESCRIPTIONS: dict[str, str] = {
    "core.v1.ServiceSpec.clusterIP": (
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address is "
        "specified manually, is in-range (as per system configuration), and is not in use, it will be "
        "allocated to the service; otherwise creation of the service will fail. This field may not be "
        "changed through updates unless the type field is also being changed to ExternalName. Valid "
        "values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes "
        "a \"headless service\" (no virtual IP)."
    ),
    "core.v1.ServiceSpec.selector": (
        "Route service traffic to pods with label keys and values matching this selector. If empty or "
        "not present, the service is assumed to have an external process managing its endpoints."
    ),
    "core.v1.ServiceSpec.ports": "The list of ports that are exposed by this service.",
    "core.v1.ServiceSpec.type": (
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        "ExternalName, ClusterIP, NodePort, and LoadBalancer."
    ),
    "core.v1.ServiceSpec.publishNotReadyAddresses": (
        "publishNotReadyAddresses indicates that any agent which deals with endpoints for this Service "
        "should disregard any indications of ready/not-ready. The primary use case for setting this field "
        "is for a StatefulSet's Headless Service to propagate SRV DNS records for its Pods for the purpose "
        "of peer discovery."
    ),
    "core.v1.ServiceSpec.externalName": (
        "externalName is the external reference that discovery mechanisms will return as an alias for "
        "this service (e.g. a DNS CNAME record). Requires `type` to be \"ExternalName\"."
    ),
    "core.v1.ServicePort.port": "The port that will be exposed by this service.",
    "core.v1.ServicePort.targetPort": (
        "Number or name of the port to access on the pods targeted by the service. If this is not "
        "specified, the value of the 'port' field is used (an identity map)."
    ),
    "core.v1.ServicePort.name": (
        "The name of this port within the service. This must be a DNS_LABEL. All ports within a "
        "ServiceSpec must have unique names."
    ),
    "core.v1.PodSpec.hostname": (
        "Specifies the hostname of the Pod. If not specified, the pod's hostname will be set to a "
        "system-defined value."
    ),
    "core.v1.PodSpec.subdomain": (
        "If specified, the fully qualified Pod hostname will be \"<hostname>.<subdomain>.<pod "
        "namespace>.svc.<cluster domain>\". If not specified, the pod will not have a domainname at all."
    ),
    "core.v1.Container.readinessProbe": (
        "Periodic probe of container service readiness. Container will be removed from service endpoints "
        "if the probe fails."
    ),
    "apps.v1.StatefulSetSpec.serviceName": (
        "serviceName is the name of the service that governs this StatefulSet. This service must exist "
        "before the StatefulSet, and is responsible for the network identity of the set. Pods get "
        "DNS/hostnames that follow the pattern: pod-specific-string.serviceName.default.svc.cluster.local"
    ),
    "apps.v1.StatefulSetSpec.replicas": "replicas is the desired number of replicas of the given Template.",
    "apps.v1.StatefulSetSpec.podManagementPolicy": (
        "podManagementPolicy controls how pods are created during initial scale up, when replacing pods "
        "on nodes, or when scaling down. The default policy is `OrderedReady`; `Parallel` launches or "
        "terminates all Pods in parallel."
    ),
    "apps.v1.StatefulSetSpec.updateStrategy": (
        "updateStrategy indicates the StatefulSetUpdateStrategy that will be employed to update Pods in "
        "the StatefulSet when a revision is made to Template."
    ),
    "apps.v1.DeploymentSpec.replicas": (
        "Number of desired pods. This is a pointer to distinguish between explicit zero and not "
        "specified. Defaults to 1."
    ),
    "apps.v1.DeploymentSpec.strategy": (
        "The deployment strategy to use to replace existing pods with new ones."
    ),
    "apps.v1.DeploymentSpec.minReadySeconds": (
        "Minimum number of seconds for which a newly created pod should be ready without any of its "
        "container crashing, for it to be considered available. Defaults to 0 (pod will be considered "
        "available as soon as it is ready)"
    ),
    "apps.v1.DeploymentSpec.revisionHistoryLimit": (
        "The number of old ReplicaSets to retain to allow rollback. This is a pointer to distinguish "
        "between explicit zero and not specified. Defaults to 10."
    ),
    "apps.v1.DeploymentSpec.paused": "Indicates that the deployment is paused.",
    "apps.v1.DeploymentSpec.progressDeadlineSeconds": (
        "The maximum time in seconds for a deployment to make progress before it is considered to be "
        "failed. The deployment controller will continue to process failed deployments and a condition "
        "with a ProgressDeadlineExceeded reason will be surfaced in the deployment status. Note that "
        "progress will not be estimated during the time a deployment is paused. Defaults to 600s."
    ),
    "apps.v1.DeploymentStrategy.type": (
        "Type of deployment. Can be \"Recreate\" or \"RollingUpdate\". Default is RollingUpdate.\n\n"
        "Possible enum values:\n - `\"Recreate\"` Kill all existing pods before creating new ones.\n"
        " - `\"RollingUpdate\"` Replace the old ReplicaSets by new one using rolling update i.e gradually "
        "scale down the old ReplicaSets and scale up the new one."
    ),
    "apps.v1.DeploymentStrategy.rollingUpdate": (
        "Rolling update config params. Present only if DeploymentStrategyType = RollingUpdate."
    ),
    "apps.v1.RollingUpdateDeployment.maxUnavailable": (
        "The maximum number of pods that can be unavailable during the update. Value can be an "
        "absolute number (ex: 5) or a percentage of desired pods (ex: 10%). Absolute number is "
        "calculated from percentage by rounding down. This can not be 0 if MaxSurge is 0. Defaults to "
        "25%. Example: when this is set to 30%, the old ReplicaSet can be scaled down to 70% of desired "
        "pods immediately when the rolling update starts. Once new pods are ready, old ReplicaSet can "
        "be scaled down further, followed by scaling up the new ReplicaSet, ensuring that the total "
        "number of pods available at all times during the update is at least 70% of desired pods."
    ),
    "apps.v1.RollingUpdateDeployment.maxSurge": (
        "The maximum number of pods that can be scheduled above the desired number of pods. Value can "
        "be an absolute number (ex: 5) or a percentage of desired pods (ex: 10%). This can not be 0 if "
        "MaxUnavailable is 0. Absolute number is calculated from percentage by rounding up. Defaults to "
        "25%. Example: when this is set to 30%, the new ReplicaSet can be scaled up immediately when the "
        "rolling update starts, such that the total number of old and new pods do not exceed 130% of "
        "desired pods. Once old pods have been killed, new ReplicaSet can be scaled up further, "
        "ensuring that total number of pods running at any time during the update is at most 130% of "
        "desired pods."
    ),
    "batch.v1.JobSpec.completions": (
        "Specifies the desired number of successfully finished pods the job should be run with.  "
        "Setting to null means that the success of any pod signals the success of all pods, and allows "
        "parallelism to have any positive value.  Setting to 1 means that parallelism is limited to 1 "
        "and the success of that pod signals the success of the job."
    ),
    "batch.v1.JobSpec.parallelism": (
        "Specifies the maximum desired number of pods the job should run at any given time. The actual "
        "number of pods running in steady state will be less than this number when ((.spec.completions "
        "- .status.successful) < .spec.parallelism), i.e. when the work left to do is less than max "
        "parallelism."
    ),
    "batch.v1.JobSpec.backoffLimit": (
        "Specifies the number of retries before marking this job failed. Defaults to 6"
    ),
    "batch.v1.JobSpec.activeDeadlineSeconds": (
        "Specifies the duration in seconds relative to the startTime that the job may be continuously "
        "active before the system tries to terminate it; value must be positive integer. If a Job is "
        "suspended (at creation or through an update), this timer will effectively be stopped and reset "
        "when the Job is resumed again."
    ),
    "batch.v1.JobSpec.ttlSecondsAfterFinished": (
        "ttlSecondsAfterFinished limits the lifetime of a Job that has finished execution (either "
        "Complete or Failed). If this field is set, ttlSecondsAfterFinished after the Job finishes, it "
        "is eligible to be automatically deleted."
    ),
    "batch.v1.CronJobSpec.schedule": (
        "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."
    ),
    "batch.v1.CronJobSpec.timeZone": (
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will "
        "default to the time zone of the kube-controller-manager process."
    ),
    "batch.v1.CronJobSpec.concurrencyPolicy": (
        "Specifies how to treat concurrent executions of a Job. Valid values are:\n\n- \"Allow\" "
        "(default): allows CronJobs to run concurrently; - \"Forbid\": forbids concurrent runs, "
        "skipping next run if previous run hasn't finished yet; - \"Replace\": cancels currently "
        "running job and replaces it with a new one"
    ),
    "discovery.v1.EndpointConditions.ready": (
        "ready indicates that this endpoint is ready to receive traffic, according to whatever system is "
        "managing the endpoint."
    ),
}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


# ---------------------------------------------------------------------------------------------
# component schemas


def _scalar_schema(name: str) -> Obj:
    if name == "integer":
        return {"type": "integer", "format": "int64"}
    if name == "date-time":
        return {"type": "string", "format": "date-time"}
    if name in _SHARED_SCALARS:
        return {"allOf": [{"$ref": _REF + _SHARED_SCALARS[name][0]}]}
    if name == "object":
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"type": name}


def _field_schema(ft: schema.FieldType) -> Obj:
    if ft.kind == "scalar":
        return _scalar_schema(ft.name)
    if ft.kind == "ref":
        return {"allOf": [{"$ref": _REF + schema.openapi_name(ft.name)}], "default": {}}
    if ft.kind == "map":
        return {"type": "object", "additionalProperties": _scalar_schema(ft.name)}
    items = _scalar_schema(ft.name) if ft.name in schema.SCALARS else {
        "allOf": [{"$ref": _REF + schema.openapi_name(ft.name)}], "default": {}}
    out: Obj = {"type": "array", "items": items}
    if ft.merge_key:
        out["x-kubernetes-patch-merge-key"] = ft.merge_key
        out["x-kubernetes-patch-strategy"] = "merge"
        out["x-kubernetes-list-type"] = "map"
        out["x-kubernetes-list-map-keys"] = [ft.merge_key]
    elif ft.name in schema.SCALARS:
        out["x-kubernetes-list-type"] = "atomic"
    return out


def _described(type_name: str, field: str, body: Obj) -> Obj:
    text = FIELD_DESCRIPTIONS.get(f"{type_name}.{field}")
    return {**body, "description": text} if text else body


def _closure(roots: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen[name] = None
        for ft in schema.fields_of(name).values():
            if ft.name not in schema.SCALARS and ft.kind in ("ref", "list"):
                stack.append(ft.name)
    return sorted(seen)


def component_schemas(roots: list[tuple[str, dict[str, str]]]) -> Obj:
    """Schemas for the root types (each with its GVK) and everything they reference."""
    gvks = {name: gvk for name, gvk in roots}
    out: Obj = {ref: dict(body) for ref, body in _SHARED_SCALARS.values()}
    out[PATCH_SCHEMA] = {"type": "object", "description": (
        "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.")}
    for name in _closure([name for name, _ in roots]):
        body: Obj = {
            "type": "object",
            "properties": {f: _described(name, f, _field_schema(ft))
                           for f, ft in schema.fields_of(name).items()},
        }
        required = [f for f, ft in schema.fields_of(name).items() if ft.required]
        if required:
            body["required"] = required
        if name in KIND_DESCRIPTIONS:
            body["description"] = KIND_DESCRIPTIONS[name]
        if name in gvks:
            body["x-kubernetes-group-version-kind"] = [gvks[name]]
        out[schema.openapi_name(name)] = body
    return out


# ---------------------------------------------------------------------------------------------
# paths


def _collection_path(rt: ResourceType) -> str:
    prefix = "/" + _gv_path(rt.group, rt.version)
    if rt.namespaced:
        return f"{prefix}/namespaces/{{namespace}}/{rt.resource}"
    return f"{prefix}/{rt.resource}"


def _query(name: str) -> Obj:
    return {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}


def _operation(op_id: str, action: str, gvk: dict[str, str], response_ref: str, *,
               params: tuple[str, ...] = ()) -> Obj:
    op: Obj = {
        "operationId": op_id,
        "parameters": [_query(p) for p in params],
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": _REF + response_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if action == "patch":
        # kubectl's apply builds a strategic merge patch from these schemas only when the
        # operation says it accepts one
        patch_ref = {"schema": {"$ref": _REF + PATCH_SCHEMA}}
        op["requestBody"] = {"content": {ct: patch_ref for ct in PATCH_CONTENT_TYPES}, "required": True}
    elif action in ("post", "put"):
        op["requestBody"] = {"content": {"application/json": {"schema": {"$ref": _REF + response_ref}}},
                             "required": True}
    return op


def _paths_for(rt: ResourceType) -> Obj:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    ref = schema.openapi_name(schema_type(rt))
    coll = _collection_path(rt)
    item = coll + "/{name}"
    scope = "Namespaced" if rt.namespaced else ""
    base = f"{rt.group.split('.')[0].capitalize() if rt.group else 'Core'}{rt.version.capitalize()}"
    write = ("dryRun", "fieldManager", "fieldValidation")
    path_params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if rt.namespaced:
        path_params.append(
            {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}})
    paths: Obj = {
        coll: {
            "get": _operation(f"list{base}{scope}{rt.kind}", "list", gvk, ref + "List",
                              params=("labelSelector", "fieldSelector", "limit", "continue", "watch")),
            "post": _operation(f"create{base}{scope}{rt.kind}", "post", gvk, ref, params=write),
            "parameters": path_params[1:],
        },
        item: {
            "get": _operation(f"read{base}{scope}{rt.kind}", "get", gvk, ref),
            "put": _operation(f"replace{base}{scope}{rt.kind}", "put", gvk, ref, params=write),
            "patch": _operation(f"patch{base}{scope}{rt.kind}", "patch", gvk, ref, params=(*write, "force")),
            "delete": _operation(f"delete{base}{scope}{rt.kind}", "delete", gvk, ref, params=("dryRun",)),
            "parameters": path_params,
        },
    }
    subresources: dict[str, tuple[Obj, str]] = {
        "status": (gvk, ref),
        "scale": ({"group": "autoscaling", "version": "v1", "kind": "Scale"},
                  schema.openapi_name("autoscaling.v1.Scale")),
    }
    for sub, (sgvk, sref) in subresources.items():
        if sub not in rt.strategy.subresources:
            continue
        op = f"{base}{scope}{rt.kind}{sub.capitalize()}"
        paths[f"{item}/{sub}"] = {
            "get": _operation(f"read{op}", "get", sgvk, sref),
            "put": _operation(f"replace{op}", "put", sgvk, sref, params=write),
            "patch": _operation(f"patch{op}", "patch", sgvk, sref, params=(*write, "force")),
            "parameters": path_params,
        }
    return paths


# ---------------------------------------------------------------------------------------------
# documents


@cache
def _v3_document_bytes(group: str, version: str, registry: Registry = REGISTRY) -> bytes | None:
    if (group, version) not in registry.group_versions():
        return None
    types = [rt for rt in registry.in_group(group, version) if schema_type(rt)]
    paths: Obj = {}
    roots: list[tuple[str, dict[str, str]]] = []
    for rt in types:
        paths.update(_paths_for(rt))
        roots.append((schema_type(rt), {"group": rt.group, "version": rt.version, "kind": rt.kind}))
        if "scale" in rt.strategy.subresources:
            roots.append(("autoscaling.v1.Scale", {"group": "autoscaling", "version": "v1", "kind": "Scale"}))
    schemas = component_schemas(roots)
    for rt in types:  # list types referenced by the list operations
        ref = schema.openapi_name(schema_type(rt))
        schemas[ref + "List"] = {
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "items": {"type": "array", "items": {"allOf": [{"$ref": _REF + ref}], "default": {}}},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-group-version-kind": [
                {"group": rt.group, "version": rt.version, "kind": rt.kind + "List"}],
        }
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def v3_document(group: str, version: str, registry: Registry = REGISTRY) -> bytes | None:
    """The JSON OpenAPI v3 document of one group-version (None when not served)."""
    return _v3_document_bytes(group, version, registry)


def v3_document_for_path(path: str, registry: Registry = REGISTRY) -> bytes | None:
    """The document for `/openapi/v3/<api/v1 | apis/<group>/<version>>`, or None (404)."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["openapi", "v3"]:
        parts = parts[2:]
    if len(parts) == 2 and parts[0] == "api":
        return v3_document("", parts[1], registry)
    if len(parts) == 3 and parts[0] == "apis":
        return v3_document(parts[1], parts[2], registry)
    return None


def v3_index(registry: Registry = REGISTRY) -> Obj:
    """`/openapi/v3`: each group-version's document URL with a content hash (clients cache by
    URL, so the hash changes whenever the document does)."""
    paths: Obj = {}
    for group, version in registry.group_versions():
        body = v3_document(group, version, registry) or b""
        digest = hashlib.sha512(body).hexdigest().upper()[:128]
        gv = _gv_path(group, version)
        paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
    return {"paths": paths}


# ---------------------------------------------------------------------------------------------
# protobuf OpenAPI v2 (gnostic openapi_v2.Document), paths only


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(num: int, payload: bytes | str) -> bytes:
    """A length-delimited field (strings and embedded messages)."""
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def _bool_field(num: int, value: bool) -> bytes:
    return _varint(num << 3) + _varint(int(value))


def _v2_query_param(name: str) -> bytes:
    # ParametersItem.parameter(1) > Parameter.non_body_parameter(2)
    #   > NonBodyParameter.query_parameter_sub_schema(3) > {in=2, name=4, type=6, unique_items=20}
    sub = _field(2, "query") + _field(4, name) + _field(6, "string") + _bool_field(20, True)
    return _field(1, _field(2, _field(3, sub)))


def _v2_operation(op_id: str, gvk: dict[str, str], params: tuple[str, ...]) -> bytes:
    out = _field(5, op_id)
    for p in params:
        out += _field(8, _v2_query_param(p))
    gvk_yaml = f'group: "{gvk["group"]}"\nkind: {gvk["kind"]}\nversion: {gvk["version"]}\n'
    # vendor_extension(13): NamedAny{name=1, value=2: Any{yaml=2}}
    out += _field(13, _field(1, "x-kubernetes-group-version-kind") + _field(2, _field(2, gvk_yaml)))
    return out


@cache
def openapi_v2_protobuf(registry: Registry = REGISTRY) -> bytes:
    """A gnostic `openapi_v2.Document` with, for every served kind, its item path and a PATCH
    operation carrying the GVK extension and the `fieldValidation` parameter (what kubectl
    1.27/1.28's field-validation check looks for)."""
    path_items = b""
    for rt in registry:
        if not schema_type(rt):
            continue
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        coll = _collection_path(rt)
        op = _v2_operation(f"patch{rt.kind}", gvk, ("dryRun", "fieldManager", "fieldValidation", "force"))
        path_item = _field(8, op)  # PathItem.patch = 8
        path_items += _field(2, _field(1, coll + "/{name}") + _field(2, path_item))
    info = _field(1, "Kubernetes") + _field(2, KUBERNETES_VERSION)
    return _field(1, "2.0") + _field(2, info) + _field(8, path_items)


def handle(path: str, query: Mapping[str, str] | None = None, accept: str | None = None,
           types: Iterable[ResourceType] | None = None) -> tuple[bytes, str] | None:
    """(body, Content-Type) for `/openapi/v2` (protobuf only, as kubectl asks for it),
    `/swagger-2.0.0.pb-v1`, `/openapi/v3` and `/openapi/v3/<group-version>`; None for
    anything else (404)."""
    registry = registry_for(types) if types is not None else REGISTRY
    clean = "/" + path.strip("/")
    if clean in ("/openapi/v2", "/swagger-2.0.0.pb-v1"):
        if clean == "/openapi/v2" and "protobuf" not in (accept or ""):
            return None  # only the protobuf form is served; JSON v2 is not
        return openapi_v2_protobuf(registry), V2_PROTOBUF
    if clean == "/openapi/v3":
        return orjson.dumps(v3_index(registry)), V3_JSON
    if clean.startswith("/openapi/v3/"):
        body = v3_document_for_path(clean, registry)
        return None if body is None else (body, V3_JSON)
    return None
