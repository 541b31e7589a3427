"""Paths inside a volume: the checks kube-apiserver makes on `subPath` and on configMap/secret
`items[].path` (`validateLocalDescendingPath`, `validateLocalNonReservedPath` in
pkg/apis/core/validation), shared by the API's pod validation and the node agent, which makes them
again before it touches the filesystem (a pod written before the check, or by another API).

Each function returns the list of Kubernetes' messages for the value (empty when valid); the
caller adds the field path. Pure: no filesystem access (symlinks are the node agent's business).
"""

from __future__ import annotations

import posixpath


def local_descending_path(path: str) -> list[str]:
    """Why `path` is not a relative path that stays below its base (`subPath`)."""
    errs: list[str] = []
    if posixpath.isabs(path):
        errs.append("must be a relative path")
    if ".." in path.split("/"):
        errs.append("must not contain '..'")  # once, even for ../../..
    return errs


def file_mode(mode: object) -> list[str]:
    """Why `mode` is not a volume file mode (`defaultMode`, `items[].mode`)."""
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o777:
        return ["must be a number between 0 and 0777 (octal), both inclusive"]
    return []


def local_non_reserved_path(path: str) -> list[str]:
    """`local_descending_path`, and not starting with `..` (the kubelet's `..data` links live
    there): the rule for configMap/secret/downwardAPI `items[].path`."""
    errs = local_descending_path(path)
    if path.startswith("..") and not path.startswith("../"):  # `../x` was told already
        errs.append("must not start with '..'")
    return errs
