"""Compact schema tables of the served kinds: which fields each type has, and their types.

One table feeds two consumers, so they cannot disagree: `fieldValidation=Strict` (unknown
field detection, reported as Kubernetes does: `unknown field "spec.foo"`) and the OpenAPI
documents (`podns.api.discovery.openapi`, component schemas that `kubectl explain` reads and whose
`x-kubernetes-patch-merge-key` kubectl's apply uses).

Notation, one string per type, space-separated `field:type` entries (`field!:type` for a field
Kubernetes always serializes, which the Python client's models therefore require):
- scalars `string`, `integer`, `boolean`, `number`, `date-time`, `quantity`, `int-or-string`;
- `object`: a free-form JSON object (any content, not described); `any`: any JSON value;
- `map` / `map<quantity>`: a map of strings (of quantities);
- `[]T`: a list of T; `[]T|key` a list merged by `key` in strategic merge patch;
- `T`: another type of this table, looked up in the type's own package, then `core.v1`,
  then `meta.v1`.
Types are named `<package>.<version>.<Kind>` (`core.v1.Pod`, `apps.v1.StatefulSet`,
`meta.v1.ObjectMeta`); `openapi_name` turns that into Kubernetes' definition names.
The tables list the fields of Kubernetes 1.33 that matter here; rarely used deep structures
(affinity, security contexts, exotic volume sources) are `object`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

SCALARS = frozenset(
    {"string", "integer", "boolean", "number", "date-time", "quantity", "int-or-string", "object", "any"}
)

_TYPES: dict[str, str] = {
    # ---- meta.v1
    "meta.v1.ObjectMeta": (
        "annotations:map creationTimestamp:date-time deletionGracePeriodSeconds:integer "
        "deletionTimestamp:date-time finalizers:[]string generateName:string generation:integer "
        "labels:map managedFields:[]ManagedFieldsEntry name:string namespace:string "
        "ownerReferences:[]OwnerReference|uid resourceVersion:string selfLink:string uid:string"
    ),
    "meta.v1.OwnerReference": (
        "apiVersion!:string blockOwnerDeletion:boolean controller:boolean kind!:string name!:string "
        "uid!:string"
    ),
    "meta.v1.ManagedFieldsEntry": (
        "apiVersion:string fieldsType:string fieldsV1:object manager:string operation:string "
        "subresource:string time:date-time"
    ),
    "meta.v1.LabelSelector": "matchExpressions:[]LabelSelectorRequirement matchLabels:map",
    "meta.v1.LabelSelectorRequirement": "key!:string operator!:string values:[]string",
    "meta.v1.Condition": (
        "lastTransitionTime:date-time message!:string observedGeneration:integer reason!:string "
        "status!:string type!:string"
    ),
    # ---- core.v1: pods
    "core.v1.Pod": "apiVersion:string kind:string metadata:ObjectMeta spec:PodSpec status:PodStatus",
    "core.v1.PodTemplateSpec": "metadata:ObjectMeta spec:PodSpec",
    "core.v1.PodSpec": (
        "activeDeadlineSeconds:integer affinity:object automountServiceAccountToken:boolean "
        "containers!:[]Container|name dnsConfig:PodDNSConfig dnsPolicy:string enableServiceLinks:boolean "
        "ephemeralContainers:[]object hostAliases:[]HostAlias|ip hostIPC:boolean hostNetwork:boolean "
        "hostPID:boolean hostUsers:boolean hostname:string "
        "imagePullSecrets:[]LocalObjectReference|name initContainers:[]Container|name nodeName:string "
        "nodeSelector:map os:object overhead:map<quantity> preemptionPolicy:string priority:integer "
        "priorityClassName:string readinessGates:[]object resourceClaims:[]object "
        "resources:ResourceRequirements restartPolicy:string runtimeClassName:string "
        "schedulerName:string schedulingGates:[]object securityContext:object serviceAccount:string "
        "serviceAccountName:string setHostnameAsFQDN:boolean shareProcessNamespace:boolean "
        "subdomain:string terminationGracePeriodSeconds:integer tolerations:[]Toleration "
        "topologySpreadConstraints:[]object volumes:[]Volume|name"
    ),
    "core.v1.Container": (
        "args:[]string command:[]string env:[]EnvVar|name envFrom:[]EnvFromSource image:string "
        "imagePullPolicy:string lifecycle:object livenessProbe:Probe name!:string "
        "ports:[]ContainerPort|containerPort readinessProbe:Probe resizePolicy:[]object "
        "resources:ResourceRequirements restartPolicy:string securityContext:object startupProbe:Probe "
        "stdin:boolean stdinOnce:boolean terminationMessagePath:string terminationMessagePolicy:string "
        "tty:boolean volumeDevices:[]object volumeMounts:[]VolumeMount|mountPath workingDir:string"
    ),
    "core.v1.EnvVar": "name!:string value:string valueFrom:EnvVarSource",
    "core.v1.EnvVarSource": (
        "configMapKeyRef:object fieldRef:ObjectFieldSelector resourceFieldRef:object secretKeyRef:object"
    ),
    "core.v1.ObjectFieldSelector": "apiVersion:string fieldPath!:string",
    "core.v1.EnvFromSource": "configMapRef:object prefix:string secretRef:object",
    "core.v1.ContainerPort": (
        "containerPort!:integer hostIP:string hostPort:integer name:string protocol:string"
    ),
    "core.v1.Probe": (
        "exec:ExecAction failureThreshold:integer grpc:object httpGet:HTTPGetAction "
        "initialDelaySeconds:integer periodSeconds:integer successThreshold:integer "
        "tcpSocket:TCPSocketAction terminationGracePeriodSeconds:integer timeoutSeconds:integer"
    ),
    "core.v1.ExecAction": "command:[]string",
    "core.v1.HTTPGetAction": (
        "host:string httpHeaders:[]object path:string port!:int-or-string scheme:string"
    ),
    "core.v1.TCPSocketAction": "host:string port!:int-or-string",
    "core.v1.VolumeMount": (
        "mountPath!:string mountPropagation:string name!:string readOnly:boolean "
        "recursiveReadOnly:string subPath:string subPathExpr:string"
    ),
    "core.v1.Volume": "name!:string " + " ".join(
        f"{src}:object"
        for src in (
            "awsElasticBlockStore azureDisk azureFile cephfs cinder configMap csi downwardAPI "
            "emptyDir ephemeral fc flexVolume flocker gcePersistentDisk gitRepo glusterfs hostPath "
            "image iscsi nfs persistentVolumeClaim photonPersistentDisk portworxVolume projected "
            "quobyte rbd scaleIO secret storageos vsphereVolume"
        ).split()
    ),
    "core.v1.ResourceRequirements": "claims:[]object limits:map<quantity> requests:map<quantity>",
    "core.v1.Toleration": (
        "effect:string key:string operator:string tolerationSeconds:integer value:string"
    ),
    "core.v1.HostAlias": "hostnames:[]string ip!:string",
    "core.v1.PodDNSConfig": "nameservers:[]string options:[]object searches:[]string",
    "core.v1.LocalObjectReference": "name:string",
    "core.v1.PodStatus": (
        "conditions:[]PodCondition|type containerStatuses:[]ContainerStatus "
        "ephemeralContainerStatuses:[]ContainerStatus hostIP:string hostIPs:[]object "
        "initContainerStatuses:[]ContainerStatus message:string nominatedNodeName:string "
        "observedGeneration:integer phase:string podIP:string podIPs:[]PodIP|ip qosClass:string "
        "reason:string resize:string resourceClaimStatuses:[]object startTime:date-time"
    ),
    "core.v1.PodCondition": (
        "lastProbeTime:date-time lastTransitionTime:date-time message:string "
        "observedGeneration:integer reason:string status!:string type!:string"
    ),
    "core.v1.ContainerStatus": (
        "allocatedResources:map<quantity> allocatedResourcesStatus:[]object containerID:string "
        "image!:string imageID!:string lastState:ContainerState name!:string ready!:boolean "
        "resources:object restartCount!:integer started:boolean state:ContainerState "
        "stopSignal:string user:object volumeMounts:[]object"
    ),
    "core.v1.ContainerState": (
        "running:ContainerStateRunning terminated:ContainerStateTerminated waiting:ContainerStateWaiting"
    ),
    "core.v1.ContainerStateRunning": "startedAt:date-time",
    "core.v1.ContainerStateTerminated": (
        "containerID:string exitCode!:integer finishedAt:date-time message:string reason:string "
        "signal:integer startedAt:date-time"
    ),
    "core.v1.ContainerStateWaiting": "message:string reason:string",
    "core.v1.PodIP": "ip!:string",
    "core.v1.Binding": "apiVersion:string kind:string metadata:ObjectMeta target!:ObjectReference",
    "core.v1.ObjectReference": (
        "apiVersion:string fieldPath:string kind:string name:string namespace:string "
        "resourceVersion:string uid:string"
    ),
    # ---- core.v1: services, endpoints
    "core.v1.Service": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:ServiceSpec status:ServiceStatus"
    ),
    "core.v1.ServiceSpec": (
        "allocateLoadBalancerNodePorts:boolean clusterIP:string clusterIPs:[]string "
        "externalIPs:[]string externalName:string externalTrafficPolicy:string "
        "healthCheckNodePort:integer internalTrafficPolicy:string ipFamilies:[]string "
        "ipFamilyPolicy:string loadBalancerClass:string loadBalancerIP:string "
        "loadBalancerSourceRanges:[]string ports:[]ServicePort|port publishNotReadyAddresses:boolean "
        "selector:map sessionAffinity:string sessionAffinityConfig:object trafficDistribution:string "
        "type:string"
    ),
    "core.v1.ServicePort": (
        "appProtocol:string name:string nodePort:integer port!:integer protocol:string "
        "targetPort:int-or-string"
    ),
    "core.v1.ServiceStatus": "conditions:[]Condition|type loadBalancer:LoadBalancerStatus",
    "core.v1.LoadBalancerStatus": "ingress:[]object",
    "core.v1.Endpoints": "apiVersion:string kind:string metadata:ObjectMeta subsets:[]EndpointSubset",
    "core.v1.EndpointSubset": (
        "addresses:[]EndpointAddress notReadyAddresses:[]EndpointAddress ports:[]EndpointPort"
    ),
    "core.v1.EndpointAddress": "hostname:string ip!:string nodeName:string targetRef:ObjectReference",
    "core.v1.EndpointPort": "appProtocol:string name:string port!:integer protocol:string",
    # ---- core.v1: namespaces, nodes, events, config
    "core.v1.Namespace": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:NamespaceSpec status:NamespaceStatus"
    ),
    "core.v1.NamespaceSpec": "finalizers:[]string",
    "core.v1.NamespaceStatus": "conditions:[]object phase:string",
    "core.v1.Node": "apiVersion:string kind:string metadata:ObjectMeta spec:NodeSpec status:NodeStatus",
    "core.v1.NodeSpec": (
        "configSource:object externalID:string podCIDR:string podCIDRs:[]string providerID:string "
        "taints:[]Taint unschedulable:boolean"
    ),
    "core.v1.Taint": "effect!:string key!:string timeAdded:date-time value:string",
    "core.v1.NodeStatus": (
        "addresses:[]NodeAddress|type allocatable:map<quantity> capacity:map<quantity> "
        "conditions:[]NodeCondition|type config:object daemonEndpoints:NodeDaemonEndpoints features:object "
        "images:[]object nodeInfo:NodeSystemInfo phase:string runtimeHandlers:[]object "
        "volumesAttached:[]object volumesInUse:[]string"
    ),
    "core.v1.NodeAddress": "address!:string type!:string",
    "core.v1.NodeDaemonEndpoints": "kubeletEndpoint:DaemonEndpoint",
    "core.v1.DaemonEndpoint": "Port!:integer",
    "core.v1.NodeCondition": (
        "lastHeartbeatTime:date-time lastTransitionTime:date-time message:string reason:string "
        "status!:string type!:string"
    ),
    "core.v1.NodeSystemInfo": (
        "architecture!:string bootID!:string containerRuntimeVersion!:string kernelVersion!:string "
        "kubeProxyVersion!:string kubeletVersion!:string machineID!:string operatingSystem!:string "
        "osImage!:string swap:object systemUUID!:string"
    ),
    "core.v1.Event": (
        "action:string apiVersion:string count:integer eventTime:date-time firstTimestamp:date-time "
        "involvedObject!:ObjectReference kind:string lastTimestamp:date-time message:string "
        "metadata!:ObjectMeta reason:string related:ObjectReference reportingComponent:string "
        "reportingInstance:string series:object source:EventSource type:string"
    ),
    "core.v1.EventSource": "component:string host:string",
    "core.v1.ConfigMap": (
        "apiVersion:string binaryData:map data:map immutable:boolean kind:string metadata:ObjectMeta"
    ),
    "core.v1.Secret": (
        "apiVersion:string data:map immutable:boolean kind:string metadata:ObjectMeta "
        "stringData:map type:string"
    ),
    "core.v1.ServiceAccount": (
        "apiVersion:string automountServiceAccountToken:boolean "
        "imagePullSecrets:[]LocalObjectReference kind:string metadata:ObjectMeta "
        "secrets:[]ObjectReference|name"
    ),
    "core.v1.PersistentVolumeClaim": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:PersistentVolumeClaimSpec "
        "status:PersistentVolumeClaimStatus"
    ),
    "core.v1.PersistentVolumeClaimSpec": (
        "accessModes:[]string dataSource:object dataSourceRef:object "
        "resources:VolumeResourceRequirements selector:LabelSelector storageClassName:string "
        "volumeAttributesClassName:string volumeMode:string volumeName:string"
    ),
    "core.v1.VolumeResourceRequirements": "limits:map<quantity> requests:map<quantity>",
    "core.v1.PersistentVolume": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:PersistentVolumeSpec "
        "status:PersistentVolumeStatus"
    ),
    "core.v1.PersistentVolumeSpec": (
        "accessModes:[]string capacity:map<quantity> claimRef:ObjectReference mountOptions:[]string "
        "nodeAffinity:object persistentVolumeReclaimPolicy:string storageClassName:string "
        "volumeAttributesClassName:string volumeMode:string " + " ".join(
            f"{src}:object"
            for src in (
                "awsElasticBlockStore azureDisk azureFile cephfs cinder csi fc flexVolume flocker "
                "gcePersistentDisk glusterfs hostPath iscsi local nfs photonPersistentDisk "
                "portworxVolume quobyte rbd scaleIO storageos vsphereVolume"
            ).split()
        )
    ),
    "core.v1.PersistentVolumeStatus": (
        "lastPhaseTransitionTime:date-time message:string phase:string reason:string"
    ),
    "core.v1.PersistentVolumeClaimStatus": (
        "accessModes:[]string allocatedResourceStatuses:map allocatedResources:map<quantity> "
        "capacity:map<quantity> conditions:[]object currentVolumeAttributesClassName:string "
        "modifyVolumeStatus:object phase:string"
    ),
    "core.v1.ReplicationController": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:ReplicationControllerSpec "
        "status:ReplicationControllerStatus"
    ),
    "core.v1.ReplicationControllerSpec": (
        "minReadySeconds:integer replicas:integer selector:map template:PodTemplateSpec"
    ),
    "core.v1.ReplicationControllerStatus": (
        "availableReplicas:integer conditions:[]ReplicationControllerCondition|type "
        "fullyLabeledReplicas:integer observedGeneration:integer readyReplicas:integer "
        "replicas!:integer"
    ),
    "core.v1.ReplicationControllerCondition": (
        "lastTransitionTime:date-time message:string reason:string status!:string type!:string"
    ),
    # ---- apps.v1
    "apps.v1.StatefulSet": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:StatefulSetSpec status:StatefulSetStatus"
    ),
    "apps.v1.StatefulSetSpec": (
        "minReadySeconds:integer ordinals:StatefulSetOrdinals "
        "persistentVolumeClaimRetentionPolicy:StatefulSetPersistentVolumeClaimRetentionPolicy "
        "podManagementPolicy:string replicas:integer revisionHistoryLimit:integer "
        "selector!:LabelSelector serviceName:string template!:PodTemplateSpec "
        "updateStrategy:StatefulSetUpdateStrategy volumeClaimTemplates:[]PersistentVolumeClaim"
    ),
    "apps.v1.StatefulSetOrdinals": "start:integer",
    "apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy": "whenDeleted:string whenScaled:string",
    "apps.v1.StatefulSetUpdateStrategy": "rollingUpdate:RollingUpdateStatefulSetStrategy type:string",
    "apps.v1.RollingUpdateStatefulSetStrategy": "maxUnavailable:int-or-string partition:integer",
    "apps.v1.StatefulSetStatus": (
        "availableReplicas:integer collisionCount:integer conditions:[]StatefulSetCondition|type "
        "currentReplicas:integer currentRevision:string observedGeneration:integer "
        "readyReplicas:integer replicas!:integer updateRevision:string updatedReplicas:integer"
    ),
    "apps.v1.StatefulSetCondition": (
        "lastTransitionTime:date-time message:string reason:string status!:string type!:string"
    ),
    "apps.v1.Deployment": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:DeploymentSpec status:DeploymentStatus"
    ),
    "apps.v1.DeploymentSpec": (
        "minReadySeconds:integer paused:boolean progressDeadlineSeconds:integer replicas:integer "
        "revisionHistoryLimit:integer selector!:LabelSelector strategy:DeploymentStrategy "
        "template!:PodTemplateSpec"
    ),
    "apps.v1.DeploymentStrategy": "rollingUpdate:RollingUpdateDeployment type:string",
    "apps.v1.RollingUpdateDeployment": "maxSurge:int-or-string maxUnavailable:int-or-string",
    "apps.v1.DeploymentStatus": (
        "availableReplicas:integer collisionCount:integer conditions:[]DeploymentCondition|type "
        "observedGeneration:integer readyReplicas:integer replicas:integer terminatingReplicas:integer "
        "unavailableReplicas:integer updatedReplicas:integer"
    ),
    "apps.v1.DeploymentCondition": (
        "lastTransitionTime:date-time lastUpdateTime:date-time message:string reason:string "
        "status!:string type!:string"
    ),
    "apps.v1.DaemonSet": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:DaemonSetSpec status:DaemonSetStatus"
    ),
    "apps.v1.DaemonSetSpec": (
        "minReadySeconds:integer revisionHistoryLimit:integer selector!:LabelSelector "
        "template!:PodTemplateSpec updateStrategy:DaemonSetUpdateStrategy"
    ),
    "apps.v1.DaemonSetUpdateStrategy": "rollingUpdate:RollingUpdateDaemonSet type:string",
    "apps.v1.RollingUpdateDaemonSet": "maxSurge:int-or-string maxUnavailable:int-or-string",
    "apps.v1.DaemonSetStatus": (
        "collisionCount:integer conditions:[]DaemonSetCondition|type currentNumberScheduled!:integer "
        "desiredNumberScheduled!:integer numberAvailable:integer numberMisscheduled!:integer "
        "numberReady!:integer numberUnavailable:integer observedGeneration:integer "
        "updatedNumberScheduled:integer"
    ),
    "apps.v1.DaemonSetCondition": (
        "lastTransitionTime:date-time message:string reason:string status!:string type!:string"
    ),
    "apps.v1.ReplicaSet": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:ReplicaSetSpec status:ReplicaSetStatus"
    ),
    "apps.v1.ReplicaSetSpec": (
        "minReadySeconds:integer replicas:integer selector!:LabelSelector template:PodTemplateSpec"
    ),
    "apps.v1.ReplicaSetStatus": (
        "availableReplicas:integer conditions:[]ReplicaSetCondition|type fullyLabeledReplicas:integer "
        "observedGeneration:integer readyReplicas:integer replicas!:integer terminatingReplicas:integer"
    ),
    "apps.v1.ReplicaSetCondition": (
        "lastTransitionTime:date-time message:string reason:string status!:string type!:string"
    ),
    "apps.v1.ControllerRevision": (
        "apiVersion:string data:any kind:string metadata:ObjectMeta revision!:integer"
    ),
    # ---- batch.v1
    "batch.v1.Job": "apiVersion:string kind:string metadata:ObjectMeta spec:JobSpec status:JobStatus",
    "batch.v1.JobSpec": (
        "activeDeadlineSeconds:integer backoffLimit:integer backoffLimitPerIndex:integer "
        "completionMode:string completions:integer managedBy:string manualSelector:boolean "
        "maxFailedIndexes:integer parallelism:integer podFailurePolicy:object "
        "podReplacementPolicy:string selector:LabelSelector successPolicy:object suspend:boolean "
        "template!:PodTemplateSpec ttlSecondsAfterFinished:integer"
    ),
    "batch.v1.JobStatus": (
        "active:integer completedIndexes:string completionTime:date-time conditions:[]JobCondition|type "
        "failed:integer failedIndexes:string ready:integer startTime:date-time succeeded:integer "
        "terminating:integer uncountedTerminatedPods:UncountedTerminatedPods"
    ),
    "batch.v1.UncountedTerminatedPods": "failed:[]string succeeded:[]string",
    "batch.v1.JobCondition": (
        "lastProbeTime:date-time lastTransitionTime:date-time message:string reason:string "
        "status!:string type!:string"
    ),
    "batch.v1.CronJob": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:CronJobSpec status:CronJobStatus"
    ),
    "batch.v1.CronJobSpec": (
        "concurrencyPolicy:string failedJobsHistoryLimit:integer jobTemplate!:JobTemplateSpec "
        "schedule!:string startingDeadlineSeconds:integer successfulJobsHistoryLimit:integer "
        "suspend:boolean timeZone:string"
    ),
    "batch.v1.JobTemplateSpec": "metadata:ObjectMeta spec:JobSpec",
    "batch.v1.CronJobStatus": (
        "active:[]ObjectReference lastScheduleTime:date-time lastSuccessfulTime:date-time"
    ),
    # ---- autoscaling.v1
    "autoscaling.v1.Scale": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:ScaleSpec status:ScaleStatus"
    ),
    "autoscaling.v1.ScaleSpec": "replicas:integer",
    "autoscaling.v1.ScaleStatus": "replicas!:integer selector:string",
    "autoscaling.v1.HorizontalPodAutoscaler": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:HorizontalPodAutoscalerSpec "
        "status:HorizontalPodAutoscalerStatus"
    ),
    "autoscaling.v1.HorizontalPodAutoscalerSpec": (
        "maxReplicas!:integer minReplicas:integer scaleTargetRef!:CrossVersionObjectReference "
        "targetCPUUtilizationPercentage:integer"
    ),
    "autoscaling.v1.CrossVersionObjectReference": "apiVersion:string kind!:string name!:string",
    "autoscaling.v1.HorizontalPodAutoscalerStatus": (
        "currentCPUUtilizationPercentage:integer currentReplicas!:integer desiredReplicas!:integer "
        "lastScaleTime:date-time observedGeneration:integer"
    ),
    # ---- autoscaling.v2
    "autoscaling.v2.HorizontalPodAutoscaler": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:HorizontalPodAutoscalerSpec "
        "status:HorizontalPodAutoscalerStatus"
    ),
    "autoscaling.v2.HorizontalPodAutoscalerSpec": (
        "behavior:HorizontalPodAutoscalerBehavior maxReplicas!:integer metrics:[]MetricSpec "
        "minReplicas:integer scaleTargetRef!:CrossVersionObjectReference"
    ),
    "autoscaling.v2.CrossVersionObjectReference": "apiVersion:string kind!:string name!:string",
    "autoscaling.v2.MetricSpec": (
        "containerResource:ContainerResourceMetricSource external:ExternalMetricSource "
        "object:ObjectMetricSource pods:PodsMetricSource resource:ResourceMetricSource type!:string"
    ),
    "autoscaling.v2.ResourceMetricSource": "name!:string target!:MetricTarget",
    "autoscaling.v2.ContainerResourceMetricSource": (
        "container!:string name!:string target!:MetricTarget"
    ),
    "autoscaling.v2.PodsMetricSource": "metric!:MetricIdentifier target!:MetricTarget",
    "autoscaling.v2.ObjectMetricSource": (
        "describedObject!:CrossVersionObjectReference metric!:MetricIdentifier target!:MetricTarget"
    ),
    "autoscaling.v2.ExternalMetricSource": "metric!:MetricIdentifier target!:MetricTarget",
    "autoscaling.v2.MetricIdentifier": "name!:string selector:LabelSelector",
    "autoscaling.v2.MetricTarget": (
        "averageUtilization:integer averageValue:quantity type!:string value:quantity"
    ),
    "autoscaling.v2.HorizontalPodAutoscalerBehavior": (
        "scaleDown:HPAScalingRules scaleUp:HPAScalingRules"
    ),
    "autoscaling.v2.HPAScalingRules": (
        "policies:[]HPAScalingPolicy selectPolicy:string stabilizationWindowSeconds:integer "
        "tolerance:quantity"
    ),
    "autoscaling.v2.HPAScalingPolicy": "periodSeconds!:integer type!:string value!:integer",
    "autoscaling.v2.HorizontalPodAutoscalerStatus": (
        "conditions:[]HorizontalPodAutoscalerCondition|type currentMetrics:[]MetricStatus "
        "currentReplicas:integer desiredReplicas!:integer lastScaleTime:date-time "
        "observedGeneration:integer"
    ),
    "autoscaling.v2.HorizontalPodAutoscalerCondition": (
        "lastTransitionTime:date-time message:string reason:string status!:string type!:string"
    ),
    "autoscaling.v2.MetricStatus": (
        "containerResource:object external:object object:object pods:object resource:object "
        "type!:string"
    ),
    # ---- networking.v1
    "networking.v1.Ingress": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:IngressSpec status:IngressStatus"
    ),
    "networking.v1.IngressSpec": (
        "defaultBackend:IngressBackend ingressClassName:string rules:[]IngressRule tls:[]IngressTLS"
    ),
    "networking.v1.IngressBackend": (
        "resource:TypedLocalObjectReference service:IngressServiceBackend"
    ),
    "core.v1.TypedLocalObjectReference": "apiGroup:string kind!:string name!:string",
    "networking.v1.IngressServiceBackend": "name!:string port:ServiceBackendPort",
    "networking.v1.ServiceBackendPort": "name:string number:integer",
    "networking.v1.IngressRule": "host:string http:HTTPIngressRuleValue",
    "networking.v1.HTTPIngressRuleValue": "paths!:[]HTTPIngressPath",
    "networking.v1.HTTPIngressPath": "backend!:IngressBackend path:string pathType!:string",
    "networking.v1.IngressTLS": "hosts:[]string secretName:string",
    "networking.v1.IngressStatus": "loadBalancer:IngressLoadBalancerStatus",
    "networking.v1.IngressLoadBalancerStatus": "ingress:[]IngressLoadBalancerIngress",
    "networking.v1.IngressLoadBalancerIngress": "hostname:string ip:string ports:[]object",
    "networking.v1.IngressClass": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:IngressClassSpec"
    ),
    "networking.v1.IngressClassSpec": "controller:string parameters:IngressClassParametersReference",
    "networking.v1.IngressClassParametersReference": (
        "apiGroup:string kind!:string name!:string namespace:string scope:string"
    ),
    # ---- discovery.v1
    "discovery.v1.EndpointSlice": (
        "addressType!:string apiVersion:string endpoints!:[]Endpoint kind:string metadata:ObjectMeta "
        "ports:[]EndpointPort"
    ),
    "discovery.v1.Endpoint": (
        "addresses!:[]string conditions:EndpointConditions deprecatedTopology:map hints:object "
        "hostname:string nodeName:string targetRef:ObjectReference zone:string"
    ),
    "discovery.v1.EndpointConditions": "ready:boolean serving:boolean terminating:boolean",
    "discovery.v1.EndpointPort": "appProtocol:string name:string port:integer protocol:string",
    # ---- policy.v1
    "policy.v1.PodDisruptionBudget": (
        "apiVersion:string kind:string metadata:ObjectMeta spec:PodDisruptionBudgetSpec "
        "status:PodDisruptionBudgetStatus"
    ),
    "policy.v1.PodDisruptionBudgetSpec": (
        "maxUnavailable:int-or-string minAvailable:int-or-string selector:LabelSelector "
        "unhealthyPodEvictionPolicy:string"
    ),
    "policy.v1.PodDisruptionBudgetStatus": (
        "conditions:[]Condition|type currentHealthy!:integer desiredHealthy!:integer "
        "disruptedPods:map disruptionsAllowed!:integer expectedPods!:integer observedGeneration:integer"
    ),
    "policy.v1.Eviction": "apiVersion:string deleteOptions:object kind:string metadata:ObjectMeta",
    # ---- coordination.v1
    "coordination.v1.Lease": "apiVersion:string kind:string metadata:ObjectMeta spec:LeaseSpec",
    "coordination.v1.LeaseSpec": (
        "acquireTime:date-time holderIdentity:string leaseDurationSeconds:integer "
        "leaseTransitions:integer preferredHolder:string renewTime:date-time strategy:string"
    ),
    # ---- node.v1
    "node.v1.RuntimeClass": (
        "apiVersion:string handler!:string kind:string metadata:ObjectMeta overhead:Overhead "
        "scheduling:Scheduling"
    ),
    "node.v1.Overhead": "podFixed:map<quantity>",
    "node.v1.Scheduling": "nodeSelector:map tolerations:[]Toleration",
    # ---- rbac.v1
    "rbac.v1.PolicyRule": (
        "apiGroups:[]string nonResourceURLs:[]string resourceNames:[]string resources:[]string "
        "verbs!:[]string"
    ),
    "rbac.v1.AggregationRule": "clusterRoleSelectors:[]LabelSelector",
    "rbac.v1.Role": "apiVersion:string kind:string metadata:ObjectMeta rules:[]PolicyRule",
    "rbac.v1.ClusterRole": (
        "aggregationRule:AggregationRule apiVersion:string kind:string metadata:ObjectMeta "
        "rules:[]PolicyRule"
    ),
    "rbac.v1.RoleRef": "apiGroup!:string kind!:string name!:string",
    "rbac.v1.Subject": "apiGroup:string kind!:string name!:string namespace:string",
    "rbac.v1.RoleBinding": (
        "apiVersion:string kind:string metadata:ObjectMeta roleRef!:RoleRef subjects:[]Subject"
    ),
    "rbac.v1.ClusterRoleBinding": (
        "apiVersion:string kind:string metadata:ObjectMeta roleRef!:RoleRef subjects:[]Subject"
    ),
    # ---- authorization.v1, authentication.v1 (reviews: created, never stored)
    "authorization.v1.ResourceAttributes": (
        "fieldSelector:object group:string labelSelector:object name:string namespace:string "
        "resource:string subresource:string verb:string version:string"
    ),
    "authorization.v1.NonResourceAttributes": "path:string verb:string",
    "authorization.v1.SelfSubjectAccessReviewSpec": (
        "nonResourceAttributes:NonResourceAttributes resourceAttributes:ResourceAttributes"
    ),
    "authorization.v1.SubjectAccessReviewSpec": (
        "extra:object groups:[]string nonResourceAttributes:NonResourceAttributes "
        "resourceAttributes:ResourceAttributes uid:string user:string"
    ),
    "authorization.v1.SubjectAccessReviewStatus": (
        "allowed!:boolean denied:boolean evaluationError:string reason:string"
    ),
    "authorization.v1.SelfSubjectAccessReview": (
        "apiVersion:string kind:string metadata:ObjectMeta spec!:SelfSubjectAccessReviewSpec "
        "status:SubjectAccessReviewStatus"
    ),
    "authorization.v1.SubjectAccessReview": (
        "apiVersion:string kind:string metadata:ObjectMeta spec!:SubjectAccessReviewSpec "
        "status:SubjectAccessReviewStatus"
    ),
    "authorization.v1.LocalSubjectAccessReview": (
        "apiVersion:string kind:string metadata:ObjectMeta spec!:SubjectAccessReviewSpec "
        "status:SubjectAccessReviewStatus"
    ),
    "authorization.v1.SelfSubjectRulesReviewSpec": "namespace:string",
    "authorization.v1.ResourceRule": (
        "apiGroups:[]string resourceNames:[]string resources:[]string verbs!:[]string"
    ),
    "authorization.v1.NonResourceRule": "nonResourceURLs:[]string verbs!:[]string",
    "authorization.v1.SubjectRulesReviewStatus": (
        "evaluationError:string incomplete!:boolean nonResourceRules!:[]NonResourceRule "
        "resourceRules!:[]ResourceRule"
    ),
    "authorization.v1.SelfSubjectRulesReview": (
        "apiVersion:string kind:string metadata:ObjectMeta spec!:SelfSubjectRulesReviewSpec "
        "status:SubjectRulesReviewStatus"
    ),
    "authentication.v1.UserInfo": "extra:object groups:[]string uid:string username:string",
    "authentication.v1.SelfSubjectReviewStatus": "userInfo:UserInfo",
    "authentication.v1.SelfSubjectReview": (
        "apiVersion:string kind:string metadata:ObjectMeta status:SelfSubjectReviewStatus"
    ),
    # ---- events.v1
    "events.v1.Event": (
        "action:string apiVersion:string deprecatedCount:integer deprecatedFirstTimestamp:date-time "
        "deprecatedLastTimestamp:date-time deprecatedSource:EventSource eventTime:date-time "
        "kind:string metadata:ObjectMeta note:string reason:string regarding:ObjectReference "
        "related:ObjectReference reportingController:string reportingInstance:string series:object "
        "type:string"
    ),
}

_PACKAGE_PREFIX = {
    "meta": "io.k8s.apimachinery.pkg.apis.meta",
    "core": "io.k8s.api.core",
    "apps": "io.k8s.api.apps",
    "autoscaling": "io.k8s.api.autoscaling",
    "batch": "io.k8s.api.batch",
    "policy": "io.k8s.api.policy",
    "discovery": "io.k8s.api.discovery",
    "coordination": "io.k8s.api.coordination",
    "node": "io.k8s.api.node",
    "networking": "io.k8s.api.networking",
    "events": "io.k8s.api.events",
    "rbac": "io.k8s.api.rbac",
    "authorization": "io.k8s.api.authorization",
    "authentication": "io.k8s.api.authentication",
}


@dataclass(frozen=True, slots=True)
class FieldType:
    """A field's type: `kind` is "scalar", "map", "list" or "ref"; `name` the scalar or
    referenced type name; `merge_key` the strategic-merge key of a list."""

    kind: str
    name: str
    merge_key: str | None = None
    required: bool = False


def _parse_type(owner: str, spec: str) -> FieldType:
    if spec.startswith("[]"):
        elem, _, key = spec[2:].partition("|")
        inner = _parse_type(owner, elem)
        return FieldType("list", inner.name, key or None)
    if spec == "map":
        return FieldType("map", "string")
    if spec == "map<quantity>":
        return FieldType("map", "quantity")
    if spec in SCALARS:
        return FieldType("scalar", spec)
    package = owner.rsplit(".", 1)[0]
    for candidate in (f"{package}.{spec}", f"core.v1.{spec}", f"meta.v1.{spec}"):
        if candidate in _TYPES:
            return FieldType("ref", candidate)
    raise KeyError(f"schema type {spec!r} used by {owner} is not defined")


@cache
def fields_of(type_name: str) -> dict[str, FieldType]:
    """The fields of a table type (raises KeyError for an unknown type)."""
    out: dict[str, FieldType] = {}
    for entry in _TYPES[type_name].split():
        name, _, spec = entry.partition(":")
        ft = _parse_type(type_name, spec)
        if name.endswith("!"):
            name = name[:-1]
            ft = FieldType(ft.kind, ft.name, ft.merge_key, True)
        out[name] = ft
    return out


def type_names() -> list[str]:
    return sorted(_TYPES)


def openapi_name(type_name: str) -> str:
    """`core.v1.Pod` -> `io.k8s.api.core.v1.Pod` (Kubernetes' OpenAPI definition name)."""
    package, rest = type_name.split(".", 1)
    return f"{_PACKAGE_PREFIX[package]}.{rest}"


def unknown_fields(type_name: str, obj: Any, path: str = "") -> list[str]:
    """Paths of fields in `obj` that the schema of `type_name` does not know, in document
    order (`spec.foo`, `spec.ports[0].bogus`), as `fieldValidation=Strict` reports them.
    Values of the wrong shape are not reported here (the decoder or validation does that)."""
    if not isinstance(obj, dict):
        return []
    known = fields_of(type_name)
    out: list[str] = []
    for key, value in obj.items():
        sub = f"{path}.{key}" if path else key
        ft = known.get(key)
        if ft is None:
            out.append(sub)
            continue
        if ft.kind == "ref":
            out.extend(unknown_fields(ft.name, value, sub))
        elif ft.kind == "list" and ft.name not in SCALARS and isinstance(value, list):
            for i, item in enumerate(value):
                out.extend(unknown_fields(ft.name, item, f"{sub}[{i}]"))
    return out


_ZERO: dict[str, Any] = {"string": "", "integer": 0, "boolean": False, "int-or-string": 0}


def fill_required(type_name: str, obj: Any) -> None:
    """Give every always-serialized field its zero value when absent, in place, as Go's JSON
    encoding of a Kubernetes struct would (`status.replicas: 0`, a node's `nodeInfo.bootID: ""`).
    Strict clients (the Python client's pydantic models) reject objects without them. Time
    fields are left out (Go writes a zero time as null); lists become `[]`."""
    if not isinstance(obj, dict):
        return
    for name, ft in fields_of(type_name).items():
        value = obj.get(name)
        if value is None and ft.required:
            if ft.kind == "ref":
                obj[name] = value = {}
            elif ft.kind == "list":
                obj[name] = []
            elif ft.kind == "map":
                obj[name] = {}
            elif ft.name in _ZERO:
                obj[name] = _ZERO[ft.name]
        if ft.kind == "ref" and isinstance(value, dict):
            fill_required(ft.name, value)
        elif ft.kind == "list" and ft.name not in SCALARS and isinstance(value, list):
            for item in value:
                fill_required(ft.name, item)


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
                    float: "number"}


def _scalar_ok(name: str, value: Any) -> bool:
    if name == "any":
        return True
    if name == "object":
        return isinstance(value, dict)
    if name in ("string", "date-time"):
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, int | float)
    if name == "quantity":
        return isinstance(value, str | int | float)
    if name == "int-or-string":
        return isinstance(value, str | int)
    return True


def _expected(ft: FieldType) -> str:
    if ft.kind == "ref":
        return "object"
    if ft.kind in ("list", "map"):
        return "array" if ft.kind == "list" else "object"
    return {"date-time": "string", "quantity": "string or number", "int-or-string": "string or integer",
            "object": "object"}.get(ft.name, ft.name)


def type_errors(type_name: str, obj: Any, path: str = "") -> list[tuple[str, Any, str]]:
    """Values whose JSON type does not fit the schema, as `(path, value, expected type)`: what
    Kubernetes' decoder refuses ("cannot unmarshal string into Go struct field ... of type
    int32"). `null` fits anything (Go decodes it to the zero value); unknown fields are
    `unknown_fields`' business. Kind-specific code may rely on the shapes once this is empty."""
    if obj is None:
        return []
    if not isinstance(obj, dict):
        return [(path or "<root>", obj, "object")]
    known = fields_of(type_name)
    out: list[tuple[str, Any, str]] = []
    for key, value in obj.items():
        ft = known.get(key)
        if ft is None or value is None:
            continue
        sub = f"{path}.{key}" if path else key
        if ft.kind == "ref":
            out.extend(type_errors(ft.name, value, sub))
        elif ft.kind == "scalar":
            if not _scalar_ok(ft.name, value):
                out.append((sub, value, _expected(ft)))
        elif ft.kind == "map":
            if not isinstance(value, dict):
                out.append((sub, value, "object"))
                continue
            for k, v in value.items():
                if v is not None and not _scalar_ok(ft.name, v):
                    out.append((f"{sub}[{k}]", v, _expected(FieldType("scalar", ft.name))))
        elif not isinstance(value, list):
            out.append((sub, value, "array"))
        else:
            for i, item in enumerate(value):
                if item is None:
                    continue
                if ft.name in SCALARS:
                    if not _scalar_ok(ft.name, item):
                        out.append((f"{sub}[{i}]", item, _expected(FieldType("scalar", ft.name))))
                else:
                    out.extend(type_errors(ft.name, item, f"{sub}[{i}]"))
    return out


def json_type_name(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), "null" if value is None else type(value).__name__)


def strip_nulls(type_name: str, obj: Any) -> None:
    """Drop `null` fields in place, recursively through the schema's object types: Go decodes
    `null` as the zero value and omits it again when encoding, so `{"spec": {"selector": null}}`
    is stored as if `selector` had not been sent (and a null list element becomes `{}`)."""
    if not isinstance(obj, dict):
        return
    known = fields_of(type_name)
    for key in [k for k, v in obj.items() if v is None]:
        del obj[key]
    for key, value in obj.items():
        ft = known.get(key)
        if ft is None:
            continue
        if ft.kind == "ref":
            strip_nulls(ft.name, value)
        elif ft.kind == "list" and ft.name not in SCALARS and isinstance(value, list):
            for i, item in enumerate(value):
                if item is None:
                    value[i] = item = {}  # a null element decodes as the zero struct
                strip_nulls(ft.name, item)
