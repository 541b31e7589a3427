"""Container environment and command line: `env`, `envFrom`, `valueFrom` and `$(VAR)` expansion.

Follows the kubelet (`pkg/kubelet/kubelet_pods.go` makeEnvironmentVariables and the forked
`expansion` package): `env` entries are resolved in order, each value expanded against the
variables defined before it; `$(VAR)` of an undefined variable stays as written; `$$` is a
literal `$`. `command` and `args` are then expanded against the complete environment.

Pure functions, no I/O: ConfigMaps and Secrets the container refers to are fetched by the agent
beforehand and passed in. A reference that cannot be resolved raises `ConfigError`, which the
agent reports as Waiting / `CreateContainerConfigError`, as the kubelet does.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

Obj = dict[str, Any]

#: what every container sees besides its own env: the host's PATH (there is no image to bring
#: one) and unbuffered Python output, so `kubectl logs` shows prints as they happen.
BASE_ENV_KEYS = ("PATH", "LANG", "LC_ALL", "TZ")


class ConfigError(Exception):
    """A container's configuration refers to something missing (reason CreateContainerConfigError)."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Expand `$(VAR)` references in `text` as Kubernetes does (undefined ones stay, `$$` -> `$`)."""
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append(text[i:])
                break
            name = text[i + 2 : end]
            value = lookup(name) if name else None
            out.append(value if value is not None else text[i : end + 1])
            i = end + 1
        else:
            out.append(ch + nxt)
            i += 2
    return "".join(out)


def env_var_name_for_volume(name: str) -> str:
    """`PODNS_VOLUME_<NAME>`: the volume name upper-cased with non-alphanumerics as `_`."""
    return "PODNS_VOLUME_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref(pod: Obj, path: str, *, pod_ip: str, host_ip: str) -> str:
    """Resolve a downward-API `fieldRef.fieldPath` against `pod` (raises ConfigError if unsupported)."""
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", "default"),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.podIP": pod_ip.split(",")[0],  # `pod_ip`: the pod's addresses, comma-separated
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1]) or {}
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_ref(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(name)
    if value is None:
        # the kubelet falls back to node allocatable for unset limits; report the node's CPUs
        value = str(os.cpu_count() or 1) if name == "cpu" else "0"
    return str(value)


def _source_data(sources: Mapping[str, Obj | None], kind: str, name: str) -> Obj | None:
    obj = sources.get(name)
    if obj is None:
        return None
    data = dict(obj.get("data") or {})
    if kind == "secret":
        data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
        data.update(obj.get("stringData") or {})
    return data


def build_env(
    pod: Obj,
    container: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    extra: Mapping[str, str] | None = None,
    configmaps: Mapping[str, Obj | None] | None = None,
    secrets: Mapping[str, Obj | None] | None = None,
    base: Mapping[str, str] | None = None,
    host_defaults: bool = True,
) -> dict[str, str]:
    """The environment of `container`: base (host PATH etc.), `extra` (volume paths, pod IP),
    `envFrom`, then `env` in order with `$(VAR)` expansion against what precedes each entry.

    `configmaps` / `secrets` map names to the fetched objects (None = does not exist).
    Raises ConfigError for a missing required ConfigMap, Secret or key. `host_defaults` False
    (containers from images): no host PATH, PYTHONUNBUFFERED or HOSTNAME, only the spec's own.
    """
    configmaps = configmaps or {}
    secrets = secrets or {}
    env: dict[str, str] = {}
    if host_defaults:
        source = os.environ if base is None else base
        env.update({k: source[k] for k in BASE_ENV_KEYS if k in source})
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env["PYTHONUNBUFFERED"] = "1"
        spec = pod.get("spec", {})
        env["HOSTNAME"] = str(spec.get("hostname") or pod.get("metadata", {}).get("name", ""))
    env.update(extra or {})
    for item in container.get("envFrom") or []:
        prefix = str(item.get("prefix", ""))
        for kind, sources in (("configMap", configmaps), ("secret", secrets)):
            ref = item.get(f"{kind}Ref")
            if not ref:
                continue
            data = _source_data(sources, kind, ref.get("name", ""))
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, value in data.items():
                env[prefix + key] = str(value)
    for item in container.get("env") or []:
        name = str(item.get("name", ""))
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env.get)
            continue
        value = _value_from(pod, container, item["valueFrom"], pod_ip=pod_ip, host_ip=host_ip,
                            configmaps=configmaps, secrets=secrets)
        if value is not None:
            env[name] = value
    return env


def _value_from(
    pod: Obj,
    container: Obj,
    vf: Obj,
    *,
    pod_ip: str,
    host_ip: str,
    configmaps: Mapping[str, Obj | None],
    secrets: Mapping[str, Obj | None],
) -> str | None:
    if "fieldRef" in vf:
        return field_ref(pod, str(vf["fieldRef"].get("fieldPath", "")), pod_ip=pod_ip, host_ip=host_ip)
    if "resourceFieldRef" in vf:
        return _resource_ref(container, vf["resourceFieldRef"])
    for kind, sources in (("configMap", configmaps), ("secret", secrets)):
        ref = vf.get(f"{kind}KeyRef")
        if not ref:
            continue
        data = _source_data(sources, kind, ref.get("name", ""))
        key = ref.get("key", "")
        if data is None or key not in data:
            if ref.get("optional"):
                return None
            if data is None:
                raise ConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            raise ConfigError(f'couldn\'t find key {key} in {kind} {ref.get("name", "")}')
        return str(data[key])
    raise ConfigError("unsupported valueFrom source")


def command_line(container: Obj, env: Mapping[str, str]) -> list[str]:
    """`command` + `args` with `$(VAR)` expanded. Empty when the container gives no command
    (there is no image entrypoint to fall back to: the agent reports that as Waiting)."""
    command = [str(c) for c in container.get("command") or []]
    args = [str(a) for a in container.get("args") or []]
    return [expand(part, env.get) for part in command + args]


def kubernetes_service_env(host: str, port: int) -> dict[str, str]:
    """The variables the kubelet gives every container for the `kubernetes` Service (its
    service-links form: `KUBERNETES_SERVICE_HOST`, `_PORT`, `_PORT_HTTPS`, `KUBERNETES_PORT*`),
    which in-cluster clients (client-go's rest.InClusterConfig, `podns.kube`) read."""
    addr = f"[{host}]" if ":" in host else host
    url = f"tcp://{addr}:{port}"
    prefix = f"KUBERNETES_PORT_{port}_TCP"
    return {
        "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": url, prefix: url,
        f"{prefix}_PROTO": "tcp", f"{prefix}_PORT": str(port), f"{prefix}_ADDR": host,
    }
