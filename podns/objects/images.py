"""Image references as Kubernetes reads them, and the default imagePullPolicy (API defaulting, node agent).

`normalize("busybox:1.28")` is `docker.io/library/busybox:1.28`: the grammar and the defaults of
the distribution reference library (`reference.ParseNormalizedNamed` + `TagNameOnly`) that
containerd and CRI-O apply: a first path component that looks like a host (has a `.` or a `:`, or
is `localhost`) is the registry, else the registry is `docker.io`; a one-component name on
docker.io gets `library/`; no tag and no digest means `:latest`; a digest is kept as given. Never
podman's own short-name rules (search registries, aliases, prompts): the runtime is only handed
references `normalize` made fully qualified.

Pure functions, no I/O. `InvalidReference` carries the message the kubelet reports with
InvalidImageName.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
#: the reference library's limit on the name part (registry + path)
NAME_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?\Z")
_TAG = re.compile(r"[\w][\w.-]{0,127}\Z")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}\Z")


class InvalidReference(ValueError):
    """The image reference cannot be parsed (the kubelet's InvalidImageName)."""


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed, fully qualified reference: `registry/path[:tag][@digest]`."""

    registry: str
    path: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _invalid(image: str, why: str) -> InvalidReference:
    return InvalidReference(f'Failed to apply default image tag "{image}": couldn\'t parse image '
                            f'reference "{image}": invalid reference format{why}')


def parse(image: str) -> ImageRef:
    """`image` parsed and fully qualified (registry, `library/`, `:latest` unless a digest is
    given without a tag). Raises InvalidReference."""
    if not image or image != image.strip():
        raise _invalid(image, "")
    rest, _, digest = image.partition("@")
    if digest and not _DIGEST.match(digest):
        raise _invalid(image, "")
    name, tag = rest, ""
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        name, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise _invalid(image, "")
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, remainder
        if not _DOMAIN.match(registry):
            raise _invalid(image, "")
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = OFFICIAL_PREFIX + path
    components = path.split("/")
    for part in components:
        if not _PATH_COMPONENT.match(part):
            upper = part != part.lower() and _PATH_COMPONENT.match(part.lower())
            why = ": repository name must be lowercase" if upper else ""
            raise _invalid(image, why)
    if len(name) > NAME_MAX:
        raise _invalid(image, f": repository name must not be more than {NAME_MAX} characters")
    if not tag and not digest:
        tag = DEFAULT_TAG
    return ImageRef(registry, path, tag, digest)


def normalize(image: str) -> str:
    """The fully qualified form of `image` (see the module docstring). Raises InvalidReference."""
    return str(parse(image))


def default_pull_policy(image: str) -> str:
    """The kubelet's default imagePullPolicy: Always for `:latest` or no tag (and no digest),
    else IfNotPresent. An unparsable reference gets IfNotPresent (it fails later, by name)."""
    rest, _, digest = image.partition("@")
    colon = rest.rfind(":")
    tag = rest[colon + 1:] if colon > rest.rfind("/") else ""
    if digest and not tag:
        return "IfNotPresent"
    return "Always" if tag in ("", DEFAULT_TAG) else "IfNotPresent"
