"""Pod volumes as directories: emptyDir, hostPath, persistentVolumeClaim, configMap, secret,
projected (serviceAccountToken, configMap, secret, downwardAPI: the ServiceAccount volume).

Without a mount namespace (loopback mode) a container cannot see a volume at its `mountPath`, so
each volume is a host directory and every container that mounts it gets the directory's path in
its environment as `PODNS_VOLUME_<NAME>` (volume name upper-cased, `-`/`.` as `_`; a mount's
`subPath` is appended). Commands refer to it as `$(PODNS_VOLUME_DATA)`; the variable is defined
before the container's own `env`, so env values may use it too.

Where each kind lives (under the agent's data dir):
- emptyDir: `pods/<uid>/volumes/<name>`, removed with the pod;
- persistentVolumeClaim: `volumes/pvc/<namespace>/<claimName>`, kept after the pod is gone, so a
  StatefulSet pod re-created with the same claim (`data-db-0`) finds its data again;
- hostPath: the path itself (created for `DirectoryOrCreate`/unset type when missing);
- configMap / secret: `pods/<uid>/volumes/<name>` holding one file per key (or per `items`);
- projected: `pods/<uid>/volumes/<name>` holding each source's files; the ServiceAccount token
  (requested by the agent, bound to the pod) is rewritten in place when the agent rotates it.

In namespace mode (`--pod-network netns`) each volume is in addition bind-mounted at the
container's `mountPath` inside the container's own mount namespace (`container_mounts`,
`podns.node.sandbox`); the environment variables stay, so a pod runs unchanged in both modes.

Ownership (agent running as root): with the pod's `securityContext.fsGroup`, emptyDirs, claims,
ConfigMaps and Secrets are handed to that group as the kubelet does (`SetVolumeOwnership`): group
owner fsGroup, group read/write (read-only for ConfigMaps/Secrets), set-gid directories, so a
container running as another uid (`runAsUser`, with fsGroup among its groups) can write them.
`fsGroupChangePolicy: OnRootMismatch` skips the walk when the volume's root already has it (a
large claim is not walked at every start). hostPaths are never changed.

`shm_size`: the size of a container's `/dev/shm` in namespace mode: Kubernetes' 64 MiB, or the
`sizeLimit` of a `medium: Memory` emptyDir mounted at `/dev/shm` (the Kubernetes idiom for a larger
one; mounted as that tmpfs rather than as a directory).

Raises `VolumeError` (reported as a pod event `FailedMount`, containers Waiting) for a hostPath
of the wrong type, a missing required ConfigMap/Secret, or a path that would leave its volume: a
`subPath` or `items[].path` that is absolute or has `..` (or reaches out through a symlink a pod
made), a `claimName` that is not a plain name. The API server refuses those already; the agent
checks again before it creates anything, since the agent runs as root and the pod spec is input.

ConfigMap/Secret files are written with their final mode (`items[].mode`, else `defaultMode`,
else 0644 as Kubernetes) into a new file that replaces the old one, so a symlink a pod left in the
volume is replaced, never followed.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from podns.node.env import env_var_name_for_volume
from podns.node.sandbox import DEFAULT_SHM_SIZE, Mount
from podns.objects import podrefs
from podns.objects.names import is_dns1123_subdomain
from podns.objects.paths import file_mode, local_descending_path, local_non_reserved_path
from podns.objects.quantity import parse_quantity
from podns.objects.wellknown import SERVICE_ACCOUNT_DIR_ENV, SERVICE_ACCOUNT_MOUNT_PATH

Obj = dict[str, Any]

#: the mode of configMap/secret volume files without defaultMode (Kubernetes' 0644, 420)
DEFAULT_FILE_MODE = 0o644


class VolumeError(Exception):
    """A volume could not be set up (event reason FailedMount)."""


def pod_dir(data_dir: Path, pod: Obj) -> Path:
    """`<data>/pods/<namespace>_<name>_<uid>`: the pod's own directory (the kubelet's layout)."""
    meta = pod.get("metadata", {})
    ns, name, uid = meta.get("namespace", "default"), meta.get("name", ""), meta.get("uid", "")
    return data_dir / "pods" / f"{ns}_{name}_{uid}"


def _write_keys(target: Path, data: Mapping[str, str], items: list[Obj] | None, default_mode: int) -> None:
    chosen = {i["key"]: (str(i.get("path", "")), i.get("mode", default_mode))
              for i in items or [] if "key" in i} or {k: (k, default_mode) for k in data}
    for key, (rel, mode) in chosen.items():  # every check before the first write
        if key not in data:
            raise VolumeError(f"configmap/secret key {key!r} not found")
        why = local_non_reserved_path(rel) if rel else ["Required value"]
        why += file_mode(mode)
        if why:
            raise VolumeError(f"items path {rel!r} (key {key!r}, mode {mode!r}): {'; '.join(why)}")
    _write_files(target, {rel: (data[key], int(mode)) for key, (rel, mode) in chosen.items()})


def _write_files(target: Path, files: Mapping[str, tuple[str, int]]) -> None:
    """Write each `rel: (content, mode)` below `target` (paths checked by the caller; a parent
    directory reached through a symlink that leaves `target` is refused)."""
    target.mkdir(parents=True, exist_ok=True)
    for rel, (content, mode) in files.items():
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        _inside(target, dest.parent, f"items path {rel!r}")
        _write_file(dest, content.encode(), mode)


def _write_file(dest: Path, content: bytes, mode: int) -> None:
    """Write `dest` with `mode` through a new file (O_EXCL|O_NOFOLLOW) renamed over it."""
    tmp = dest.with_name(f".{dest.name}.podns-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, content)
        os.fchmod(fd, mode)  # the mode asked for, whatever the umask
    finally:
        os.close(fd)
    os.replace(tmp, dest)


def _inside(base: Path, path: Path, what: str) -> None:
    """VolumeError unless `path`, symlinks resolved, is `base` or below it."""
    real, root = os.path.realpath(path), os.path.realpath(base)
    if real != root and not real.startswith(root.rstrip("/") + "/"):
        raise VolumeError(f"{what}: leaves the volume (resolves to {real})")


def prepare(
    pod: Obj,
    data_dir: Path,
    *,
    configmaps: Mapping[str, Obj | None] | None = None,
    secrets: Mapping[str, Obj | None] | None = None,
    tokens: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Path]:
    """Create every volume of `pod`; return volume name -> host directory (or file).

    `tokens`: for each projected volume name, the ServiceAccount token of each of its
    `serviceAccountToken` sources by `path` (requested by the agent beforehand).

    VolumeError before anything is created when a container's `subPath` is absolute or has `..`."""
    spec = pod.get("spec") or {}
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
        for mount in c.get("volumeMounts") or []:
            why = local_descending_path(str(mount.get("subPath") or ""))
            if why:
                raise VolumeError(f"container {c.get('name', '')!r} subPath {mount.get('subPath')!r}: "
                                  f"{'; '.join(why)}")
    out: dict[str, Path] = {}
    base = pod_dir(data_dir, pod) / "volumes"
    namespace = pod.get("metadata", {}).get("namespace", "default")
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    fs_group = psc.get("fsGroup") if os.geteuid() == 0 else None
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = str(vol.get("name", ""))
        if "persistentVolumeClaim" in vol:
            claim = str(vol["persistentVolumeClaim"].get("claimName") or "")
            if not claim or is_dns1123_subdomain(claim):
                raise VolumeError(f"persistentVolumeClaim claimName {claim!r}: "
                                  f"{'; '.join(is_dns1123_subdomain(claim)) or 'Required value'}")
            path = data_dir / "volumes" / "pvc" / namespace / claim
            path.mkdir(parents=True, exist_ok=True)
        elif "hostPath" in vol:
            path = Path(vol["hostPath"].get("path", ""))
            kind = vol["hostPath"].get("type") or ""
            if kind in ("", "DirectoryOrCreate") and not path.exists():
                path.mkdir(parents=True, exist_ok=True)
            elif kind == "FileOrCreate" and not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            elif kind == "Directory" and not path.is_dir():
                raise VolumeError(f"hostPath type check failed: {path} is not a directory")
            elif kind == "File" and not path.is_file():
                raise VolumeError(f"hostPath type check failed: {path} is not a file")
        elif "projected" in vol:
            path = base / name
            _write_projected(path, pod, vol["projected"] or {}, configmaps or {}, secrets or {},
                             (tokens or {}).get(name) or {})
        elif "configMap" in vol or "secret" in vol:
            kind = "configMap" if "configMap" in vol else "secret"
            src = vol[kind]
            ref = str(src.get("name") or src.get("secretName") or "")
            obj = (configmaps if kind == "configMap" else secrets) or {}
            found = obj.get(ref)
            path = base / name
            if found is None:
                if src.get("optional"):
                    path.mkdir(parents=True, exist_ok=True)
                    out[name] = path
                    continue
                raise VolumeError(f'{kind.lower()} "{ref}" not found')
            data = dict(found.get("data") or {})
            if kind == "secret":
                data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
            _write_keys(path, data, src.get("items"), src.get("defaultMode", DEFAULT_FILE_MODE))
        else:  # emptyDir and anything else we only know as scratch space
            path = base / name
            path.mkdir(parents=True, exist_ok=True)
        if fs_group is not None and "hostPath" not in vol:
            read_only = bool({"configMap", "secret", "projected"} & set(vol))
            set_ownership(path, int(fs_group), read_only=read_only,
                          policy=str(psc.get("fsGroupChangePolicy") or "Always"))
        out[name] = path
    return out


def token_sources(pod: Obj) -> list[tuple[str, str, str, int]]:
    """(volume, path, audience, expirationSeconds) of every `serviceAccountToken` source of the
    pod's projected volumes ("" audience: the API server's own)."""
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        for src in ((vol.get("projected") or {}).get("sources") or []) if isinstance(vol, dict) else []:
            tok = src.get("serviceAccountToken") if isinstance(src, dict) else None
            if isinstance(tok, dict):
                out.append((str(vol.get("name", "")), str(tok.get("path") or ""),
                            str(tok.get("audience") or ""), int(tok.get("expirationSeconds") or 3600)))
    return out


def _write_projected(target: Path, pod: Obj, projected: Obj, configmaps: Mapping[str, Obj | None],
                     secrets: Mapping[str, Obj | None], tokens: Mapping[str, str]) -> None:
    """One directory holding every source of a projected volume (serviceAccountToken, configMap,
    secret, downwardAPI fieldRef), each file with its mode (`items[].mode`, else the volume's
    `defaultMode`, else 0644); VolumeError for a missing required ConfigMap/Secret or key."""
    default_mode = int(projected.get("defaultMode", DEFAULT_FILE_MODE))
    files: dict[str, tuple[str, int]] = {}
    meta = pod.get("metadata") or {}
    for src in projected.get("sources") or []:
        if "serviceAccountToken" in src:
            rel = str(src["serviceAccountToken"].get("path") or "")
            if rel not in tokens:
                raise VolumeError(f"no ServiceAccount token for path {rel!r} yet")
            files[rel] = (tokens[rel], default_mode)
        elif "configMap" in src or "secret" in src:
            kind = "configMap" if "configMap" in src else "secret"
            ref = src[kind] or {}
            found = (configmaps if kind == "configMap" else secrets).get(str(ref.get("name") or ""))
            if found is None:
                if ref.get("optional"):
                    continue
                raise VolumeError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            data = dict(found.get("data") or {})
            if kind == "secret":
                data = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
            items = ref.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                key = str(item.get("key", ""))
                if key not in data:
                    if ref.get("optional"):
                        continue
                    raise VolumeError(f"configmap/secret key {key!r} not found")
                files[str(item.get("path", ""))] = (data[key], int(item.get("mode", default_mode)))
        elif "downwardAPI" in src:
            for item in (src["downwardAPI"] or {}).get("items") or []:
                field = str((item.get("fieldRef") or {}).get("fieldPath") or "")
                values = {"metadata.namespace": meta.get("namespace", ""),
                          "metadata.name": meta.get("name", ""), "metadata.uid": meta.get("uid", "")}
                if field in ("metadata.labels", "metadata.annotations"):
                    got = meta.get(field.split(".")[1]) or {}
                    values[field] = "\n".join(f'{k}="{v}"' for k, v in sorted(got.items()))
                if field not in values:
                    raise VolumeError(f"downwardAPI fieldPath {field!r} is not supported")
                files[str(item.get("path", ""))] = (str(values[field]), int(item.get("mode", default_mode)))
    for rel, (_, mode) in files.items():  # every check before the first write
        why = local_non_reserved_path(rel) + file_mode(mode)
        if why:
            raise VolumeError(f"projected path {rel!r}: {'; '.join(why)}")
    _write_files(target, files)


def write_token(pod: Obj, volume: str, volume_dir: Path, rel: str, token: str) -> None:
    """Replace the token file `rel` of the pod's projected volume `volume` (at `volume_dir`)
    with a fresh token, atomically: readers see the old or the new one, never a mix."""
    mode = next((int((v.get("projected") or {}).get("defaultMode", DEFAULT_FILE_MODE))
                 for v in (pod.get("spec") or {}).get("volumes") or [] if v.get("name") == volume),
                DEFAULT_FILE_MODE)
    dest = volume_dir / rel
    _inside(volume_dir, dest.parent, f"projected path {rel!r}")
    _write_file(dest, token.encode(), mode)


def set_ownership(path: Path, gid: int, *, read_only: bool = False, policy: str = "Always") -> None:
    """Give the volume at `path` to group `gid` (see the module docstring); symlinks are neither
    followed nor changed."""
    if policy == "OnRootMismatch" and _owned(path, gid, read_only):
        return
    mask = 0o440 if read_only else 0o660
    for root, dirs, files in os.walk(path):
        for entry in [root, *(os.path.join(root, n) for n in dirs + files)]:
            st = os.lstat(entry)
            if stat.S_ISLNK(st.st_mode):
                continue
            os.chown(entry, -1, gid)
            mode = stat.S_IMODE(st.st_mode) | mask
            if stat.S_ISDIR(st.st_mode):
                mode |= stat.S_ISGID | 0o110
            if mode != stat.S_IMODE(st.st_mode):
                os.chmod(entry, mode)


def _owned(path: Path, gid: int, read_only: bool) -> bool:
    """The volume's root already belongs to `gid` with the permissions fsGroup gives."""
    st = path.stat()
    want = (0o440 if read_only else 0o660) | stat.S_ISGID | 0o110
    return st.st_gid == gid and stat.S_IMODE(st.st_mode) & want == want


class ShmSize(NamedTuple):
    """A container's /dev/shm: `size` bytes; `from_volume` when a Memory emptyDir stands for it."""

    size: int
    from_volume: bool = False


def shm_size(pod: Obj, container: Obj) -> ShmSize:
    """The container's /dev/shm (see the module docstring)."""
    mounts = {str(m.get("name", "")): m for m in container.get("volumeMounts") or []
              if "/" + str(m.get("mountPath") or "").strip("/") == "/dev/shm"}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        empty = vol.get("emptyDir")
        if vol.get("name") in mounts and isinstance(empty, dict) and empty.get("medium") == "Memory":
            limit = empty.get("sizeLimit")
            try:
                size = int(parse_quantity(limit)) if limit is not None else 0
            except ValueError:
                size = 0
            if size <= 0:  # no limit: what a tmpfs gets by default, half the memory
                size = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
            return ShmSize(size, from_volume=True)
    return ShmSize(DEFAULT_SHM_SIZE)


def _sub_path(path: Path, mount: Mapping[str, Any]) -> Path:
    """The directory a volumeMount sees: the volume's `path`, or its `subPath` below it
    (created when missing, as the kubelet does). VolumeError for a subPath leaving the volume."""
    sub = str(mount.get("subPath") or "")
    if not sub:
        return path
    why = local_descending_path(sub)
    if why:
        raise VolumeError(f"subPath {sub!r}: {'; '.join(why)}")
    _inside(path, path / sub, f"subPath {sub!r}")
    path = path / sub
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    return path


def container_env(container: Obj, volumes: Mapping[str, Path]) -> dict[str, str]:
    """`PODNS_VOLUME_<NAME>` for each of the container's volumeMounts (with subPath), and
    `PODNS_SERVICE_ACCOUNT_DIR` for the one at the ServiceAccount mount path."""
    env: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        name = str(mount.get("name", ""))
        path = volumes.get(name)
        if path is None:
            continue
        path = _sub_path(path, mount)
        env[env_var_name_for_volume(name)] = str(path)
        if "/" + str(mount.get("mountPath") or "").strip("/") == SERVICE_ACCOUNT_MOUNT_PATH:
            env[SERVICE_ACCOUNT_DIR_ENV] = str(path)
    return env


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> list[Mount]:
    """Namespace mode: each of the container's volumeMounts as a bind mount of the volume's
    directory (with subPath) at `mountPath` (made absolute), read-only when `readOnly`."""
    out: list[Mount] = []
    for mount in container.get("volumeMounts") or []:
        path = volumes.get(str(mount.get("name", "")))
        target = str(mount.get("mountPath") or "")
        if path is None or not target:
            continue
        path = _sub_path(path, mount)
        out.append(Mount(str(path), "/" + target.strip("/"), bool(mount.get("readOnly"))))
    return out


def cleanup(pod: Obj, data_dir: Path) -> None:
    """Remove the pod's own directory (emptyDirs, logs); claims and hostPaths stay."""
    path = pod_dir(data_dir, pod)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def referenced_sources(pod: Obj) -> tuple[set[str], set[str]]:
    """Names of the ConfigMaps and Secrets the pod's volumes, containers and imagePullSecrets
    refer to: exactly what the Node authorizer lets this node read (`podns.objects.podrefs`)."""
    refs = podrefs.pod_references(pod)
    return refs.configmaps, refs.secrets

