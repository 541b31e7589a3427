"""PodSpec defaulting and validation, shared by Pods and the pod templates of StatefulSets.

Defaults are Kubernetes' `SetDefaults_PodSpec`/`_Container`/`_Probe`/`_HTTPGetAction`
(restartPolicy Always, dnsPolicy ClusterFirst, terminationGracePeriodSeconds 30, container
terminationMessagePath/Policy and imagePullPolicy, probe periods and thresholds, ...).
Validation reports the same field paths as Kubernetes (`spec.containers[0].ports[0].containerPort`,
or under `spec.template.spec` for a template) with the same wording.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podns.api.resources._validation import (
    duplicate,
    invalid,
    not_supported,
    required,
    validate_int_or_string_port,
    validate_labels,
    validate_non_negative,
    validate_port,
)
from podns.api.resources.base import FieldError, Obj
from podns.objects import images, names, paths
from podns.objects.quantity import parse_quantity

RESTART_POLICIES = ["Always", "Never", "OnFailure"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
FIELD_REF_PATHS = [
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
]
_INDEXED_REFS = ("metadata.labels[", "metadata.annotations[")
DEFAULT_TERMINATION_GRACE_SECONDS = 30  # Kubernetes' DefaultTerminationGracePeriodSeconds
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def default_container(ctr: Any) -> None:
    if not isinstance(ctr, dict):
        return
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    if isinstance(ctr.get("image"), str) and ctr["image"]:
        ctr.setdefault("imagePullPolicy", images.default_pull_policy(ctr["image"]))
    ctr.setdefault("resources", {})
    for port in ctr.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in ctr.get("env") or []:
        ref = env.get("valueFrom", {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for name in _PROBES:
        default_probe(ctr.get(name))


def default_pod_spec(spec: Obj) -> None:
    """Fill in Kubernetes' PodSpec defaults in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_SECONDS)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for ctr in spec.get(key) or []:
            default_container(ctr)
    for vol in spec.get("volumes") or []:
        if not isinstance(vol, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(vol.get(source), dict):
                vol[source].setdefault("defaultMode", 0o644)
        if len(vol) == 1 and "name" in vol:
            vol["emptyDir"] = {}  # a volume with no source is an emptyDir, as in Kubernetes


def _validate_probe(path: str, probe: Any) -> list[FieldError]:
    if probe is None:
        return []
    if not isinstance(probe, dict):
        return [invalid(path, probe, "must be an object")]
    handlers = [h for h in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(h) is not None]
    errs: list[FieldError] = []
    if not handlers:
        errs.append(required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errs.append(FieldError(f"{path}.{handlers[1]}", "FieldValueForbidden",
                               "Forbidden: may not specify more than 1 handler type"))
    for h in ("httpGet", "tcpSocket"):
        if isinstance(probe.get(h), dict):
            port = probe[h].get("port")
            if port is None:
                errs.append(required(f"{path}.{h}.port"))
            else:
                errs.extend(validate_int_or_string_port(f"{path}.{h}.port", port))
    if isinstance(probe.get("exec"), dict) and not probe["exec"].get("command"):
        errs.append(required(f"{path}.exec.command"))
    for field in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                  "failureThreshold"):
        errs.extend(validate_non_negative(f"{path}.{field}", probe.get(field)))
    return errs


def validate_resources(path: str, resources: Any) -> list[FieldError]:
    """Requests and limits are non-negative quantities and no request exceeds its limit
    (Kubernetes' ValidateResourceRequirements, for the standard resources)."""
    if not isinstance(resources, dict):
        return []
    errs: list[FieldError] = []
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        values = resources.get(kind) or {}
        if not isinstance(values, dict):
            errs.append(invalid(f"{path}.{kind}", values, "must be a map of quantities"))
            continue
        for name, raw in values.items():
            p = f"{path}.{kind}[{name}]"
            errs.extend(invalid(p, name, m) for m in names.is_qualified_name(str(name)))
            try:
                qty = parse_quantity(raw)
            except ValueError as exc:
                errs.append(invalid(p, raw, str(exc)))
                continue
            if qty < 0:
                errs.append(invalid(p, raw, "must be greater than or equal to 0"))
            parsed.setdefault(kind, {})[name] = (qty, raw)
    for name, (req, raw) in parsed.get("requests", {}).items():
        limit = parsed.get("limits", {}).get(name)
        if limit is not None and req > limit[0]:
            errs.append(invalid(f"{path}.requests", raw,
                                f"must be less than or equal to {name} limit of {limit[1]}"))
    return errs


def _validate_container(path: str, ctr: Any, volumes: set[str], *, probes: bool) -> list[FieldError]:
    if not isinstance(ctr, dict):
        return [invalid(path, ctr, "must be an object")]
    errs: list[FieldError] = []
    name = ctr.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs.extend(invalid(f"{path}.name", name, m) for m in names.is_dns1123_label(str(name)))
    if not ctr.get("image"):
        errs.append(required(f"{path}.image"))
    policy = ctr.get("imagePullPolicy")
    if policy is not None and policy not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    port_names: set[str] = set()
    for j, port in enumerate(ctr.get("ports") or []):
        p = f"{path}.ports[{j}]"
        if not isinstance(port, dict):
            errs.append(invalid(p, port, "must be an object"))
            continue
        errs.extend(validate_port(f"{p}.containerPort", port.get("containerPort")))
        if port.get("hostPort"):
            errs.extend(validate_port(f"{p}.hostPort", port.get("hostPort")))
        pname = port.get("name")
        if pname:
            errs.extend(invalid(f"{p}.name", pname, m) for m in names.is_valid_port_name(str(pname)))
            if pname in port_names:
                errs.append(duplicate(f"{p}.name", pname))
            port_names.add(pname)
        proto = port.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            errs.append(not_supported(f"{p}.protocol", proto, PROTOCOLS))
    for j, env in enumerate(ctr.get("env") or []):
        p = f"{path}.env[{j}]"
        if not isinstance(env, dict) or not env.get("name"):
            errs.append(required(f"{p}.name"))
            continue
        ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(ref, dict):
            fp = ref.get("fieldPath")
            if not fp:
                errs.append(required(f"{p}.valueFrom.fieldRef.fieldPath"))
            elif fp not in FIELD_REF_PATHS and not fp.startswith(_INDEXED_REFS):
                errs.append(not_supported(f"{p}.valueFrom.fieldRef.fieldPath", fp, FIELD_REF_PATHS))
    for j, mount in enumerate(ctr.get("volumeMounts") or []):
        p = f"{path}.volumeMounts[{j}]"
        if not isinstance(mount, dict):
            errs.append(invalid(p, mount, "must be an object"))
            continue
        if not mount.get("name"):
            errs.append(required(f"{p}.name"))
        elif mount["name"] not in volumes:
            errs.append(FieldError(f"{p}.name", "FieldValueNotFound", f'Not found: "{mount["name"]}"'))
        if not mount.get("mountPath"):
            errs.append(required(f"{p}.mountPath"))
        sub = mount.get("subPath")
        if sub:
            errs.extend(invalid(f"{p}.subPath", sub, m) for m in paths.local_descending_path(str(sub)))
    errs.extend(validate_resources(f"{path}.resources", ctr.get("resources")))
    if probes:
        for probe in _PROBES:
            errs.extend(_validate_probe(f"{path}.{probe}", ctr.get(probe)))
    return errs


def _required_and(path: str, value: Any, check: Callable[[str], list[str]]) -> list[FieldError]:
    """Required, then each of `check`'s messages about the value as Invalid."""
    if not value:
        return [required(path)]
    return [invalid(path, value, m) for m in check(str(value))]


def _validate_volume_source(path: str, vol: Obj) -> list[FieldError]:
    """Paths a volume source writes to stay inside the volume (configMap/secret `items[].path`,
    their modes) and a claimName is a PVC name: the kubelet runs as root and trusts these."""
    errs: list[FieldError] = []
    claim = vol.get("persistentVolumeClaim")
    if isinstance(claim, dict):
        errs.extend(_required_and(f"{path}.persistentVolumeClaim.claimName", claim.get("claimName"),
                                  names.is_dns1123_subdomain))
    for source in ("configMap", "secret"):
        src = vol.get(source)
        if not isinstance(src, dict):
            continue
        p = f"{path}.{source}"
        if "defaultMode" in src:
            errs.extend(invalid(f"{p}.defaultMode", src["defaultMode"], m)
                        for m in paths.file_mode(src["defaultMode"]))
        items = src.get("items") or []
        if not isinstance(items, list):
            errs.append(invalid(f"{p}.items", items, "must be a list"))
            continue
        for k, item in enumerate(items):
            ip = f"{p}.items[{k}]"
            if not isinstance(item, dict):
                errs.append(invalid(ip, item, "must be an object"))
                continue
            if not item.get("key"):
                errs.append(required(f"{ip}.key"))
            errs.extend(_required_and(f"{ip}.path", item.get("path"), paths.local_non_reserved_path))
            if "mode" in item:
                errs.extend(invalid(f"{ip}.mode", item["mode"], m) for m in paths.file_mode(item["mode"]))
    return errs


def validate_pod_spec(path: str, spec: Any, *, extra_volumes: set[str] | None = None) -> list[FieldError]:
    """Kubernetes' ValidatePodSpec (the parts that matter here). `extra_volumes` are names
    that volume mounts may use besides `spec.volumes` (a StatefulSet's volumeClaimTemplates)."""
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    volumes: set[str] = set(extra_volumes or ())
    for i, vol in enumerate(spec.get("volumes") or []):
        p = f"{path}.volumes[{i}]"
        vname = vol.get("name") if isinstance(vol, dict) else None
        if not vname:
            errs.append(required(f"{p}.name"))
            continue
        errs.extend(invalid(f"{p}.name", vname, m) for m in names.is_dns1123_label(str(vname)))
        if vname in volumes and vname not in (extra_volumes or ()):
            errs.append(duplicate(f"{p}.name", vname))
        volumes.add(vname)
        errs.extend(_validate_volume_source(p, vol))
    containers = spec.get("containers")
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        items = spec.get(key) or []
        if not isinstance(items, list):
            errs.append(invalid(f"{path}.{key}", items, "must be a list"))
            continue
        for i, ctr in enumerate(items):
            p = f"{path}.{key}[{i}]"
            errs.extend(_validate_container(p, ctr, volumes, probes=key == "containers"))
            cname = ctr.get("name") if isinstance(ctr, dict) else None
            if cname:
                if cname in seen:
                    errs.append(duplicate(f"{p}.name", cname))
                seen.add(cname)
    restart = spec.get("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy", "ClusterFirst")
    if dns not in DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs.extend(
                invalid(f"{path}.{key}", spec[key], m) for m in names.is_dns1123_label(str(spec[key]))
            )
    errs.extend(validate_labels(f"{path}.nodeSelector", spec.get("nodeSelector")))
    if spec.get("runtimeClassName") is not None:  # set, even to "": a RuntimeClass's name
        rc = spec["runtimeClassName"]
        errs.extend(invalid(f"{path}.runtimeClassName", rc, m) for m in names.is_dns1123_subdomain(str(rc)))
    for key in ("terminationGracePeriodSeconds", "activeDeadlineSeconds"):
        errs.extend(validate_non_negative(f"{path}.{key}", spec.get(key)))
    errs.extend(validate_resources(f"{path}.resources", spec.get("resources")))
    return errs


def _same_quantity(a: Any, b: Any) -> bool:
    try:
        return parse_quantity(a) == parse_quantity(b)
    except (ValueError, TypeError):
        return bool(a == b)


def qos_class(spec: Any) -> str:
    """Kubernetes' QoS class: BestEffort without requests/limits, Guaranteed when every
    container limits cpu and memory with requests equal to limits, else Burstable."""
    listed = spec.get("containers") if isinstance(spec, dict) else None
    containers = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
    any_set = False
    guaranteed = bool(containers)
    for ctr in containers:
        res = r if isinstance(r := ctr.get("resources"), dict) else {}
        limits = lim if isinstance(lim := res.get("limits"), dict) else {}
        requests = req if isinstance(req := res.get("requests"), dict) else {}
        if limits or requests:
            any_set = True
        for resource in ("cpu", "memory"):
            if resource not in limits or not _same_quantity(requests.get(resource, limits[resource]),
                                                            limits[resource]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
