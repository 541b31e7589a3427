"""Image references: normalisation as Kubernetes' runtimes do it, and the default pull policy."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from podns.objects import images
from podns.objects.images import InvalidReference, default_pull_policy, normalize

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("image", "expected"), [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.28", "docker.io/library/busybox:1.28"),
    ("postgres:16", "docker.io/library/postgres:16"),
    ("bitnami/redis:7.2", "docker.io/bitnami/redis:7.2"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("quay.io/coreos/etcd:v3.5.9", "quay.io/coreos/etcd:v3.5.9"),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
    ("localhost/podns-test-x:1", "localhost/podns-test-x:1"),
    ("localhost:5000/a/b/c", "localhost:5000/a/b/c:latest"),
    ("localhost:1/x", "localhost:1/x:latest"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    ("my-registry.invalid/app:v1", "my-registry.invalid/app:v1"),
    ("a__b/c.d-e:Tag_1.x", "docker.io/a__b/c.d-e:Tag_1.x"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_normalize(image: str, expected: str) -> None:
    """given a reference as written in a pod spec, then it is fully qualified as containerd/CRI-O
    qualify it (docker.io, library/, :latest), digests kept, never podman's short-name rules."""
    assert normalize(image) == expected


@pytest.mark.parametrize(("image", "why"), [
    ("", ""), ("Busybox", "must be lowercase"), ("busybox:", ""), ("busybox:a b", ""),
    (" busybox", ""), ("busybox@sha256:xyz", ""), ("-bad/x", ""), ("a//b", ""),
    ("busybox:" + "t" * 129, ""), ("x" * 256, "more than 255"), ("reg.io/UP/x", "lowercase"),
])
def test_invalid(image: str, why: str) -> None:
    """given a reference the reference grammar refuses, then InvalidReference names it as the
    kubelet's InvalidImageName message does."""
    with pytest.raises(InvalidReference, match="invalid reference format") as err:
        normalize(image)
    assert f'"{image}"' in str(err.value)
    assert why in str(err.value)


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("reg.io:5000/x", "Always"),
    ("reg.io:5000/x:latest", "Always"), ("busybox:1.28", "IfNotPresent"),
    (f"busybox@{DIGEST}", "IfNotPresent"), (f"busybox:latest@{DIGEST}", "Always"),
    ("localhost/podns-test:1", "IfNotPresent"),
])
def test_default_pull_policy(image: str, policy: str) -> None:
    """given no imagePullPolicy, then `:latest` or no tag (without a digest) means Always."""
    assert default_pull_policy(image) == policy


_component = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
_registry = st.sampled_from(["", "localhost/", "localhost:5000/", "quay.io/", "r.example.invalid:1/"])


@given(registry=_registry, path=st.lists(_component, min_size=1, max_size=3), tag=st.one_of(st.none(), _tag),
       digest=st.booleans())
def test_normalize_is_idempotent_and_keeps_parts(registry: str, path: list[str], tag: str | None,
                                                 digest: bool) -> None:
    """given any valid reference, then normalising twice changes nothing, and the tag, the
    digest and the path components survive; without tag and digest the tag is latest. (A first
    component with a dot names a registry, by the grammar: not drawn without a registry.)"""
    assume(registry or ("." not in path[0] and path[0] != "localhost") or len(path) == 1)  # not a host
    image = registry + "/".join(path) + (f":{tag}" if tag else "") + (f"@{DIGEST}" if digest else "")
    ref = images.parse(image)
    assert normalize(str(ref)) == str(ref)
    assert ref.path.endswith("/".join(path))
    assert ref.tag == (tag or ("" if digest else "latest"))
    assert ref.digest == (DIGEST if digest else "")
    assert ref.registry == (registry.rstrip("/") or "docker.io")


@given(st.text(max_size=40))
def test_parser_never_raises_anything_else(text: str) -> None:
    """given any text, then the parser answers a reference or InvalidReference, nothing else."""
    try:
        ref = images.parse(text)
    except InvalidReference:
        return
    assert normalize(str(ref)) == str(ref)
