"""JSON patch (RFC 6902) with kube-apiserver's messages and error codes."""

from __future__ import annotations

from typing import Any

import pytest

from podns.objects.jsonpatch import PatchError, json_patch


def test_json_patch_operations() -> None:
    """add/remove/replace/move/copy/test with pointers, escapes and '-' appends."""
    doc = {"metadata": {"labels": {"a": "1"}}, "spec": {"ports": [{"port": 80}]}}
    out = json_patch(doc, [
        {"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"},
        {"op": "replace", "path": "/metadata/labels/a", "value": "2"},
        {"op": "add", "path": "/spec/ports/-", "value": {"port": 443}},
        {"op": "add", "path": "/spec/ports/0", "value": {"port": 8080}},
        {"op": "copy", "from": "/spec/ports/1", "path": "/spec/first"},
        {"op": "move", "from": "/spec/first", "path": "/spec/moved"},
        {"op": "remove", "path": "/spec/ports/2"},
        {"op": "test", "path": "/metadata/labels/a", "value": "2"},
    ])
    assert out == {"metadata": {"labels": {"a": "2", "app.kubernetes.io/name": "x"}},
                   "spec": {"ports": [{"port": 8080}, {"port": 80}], "moved": {"port": 80}}}
    assert doc["spec"]["ports"] == [{"port": 80}], "input untouched"


@pytest.mark.parametrize(("ops", "code"), [
    ({"op": "add"}, 400),
    ([{"op": "frobnicate", "path": "/a"}], 400),
    ([{"op": "add", "path": "a", "value": 1}], 400),
    ([{"op": "remove", "path": "/missing"}], 422),
    ([{"op": "replace", "path": "/missing", "value": 1}], 422),
    ([{"op": "test", "path": "/a", "value": 2}], 422),
    ([{"op": "add", "path": "/l/9", "value": 1}], 422),
], ids=["not-a-list", "unknown-op", "bad-pointer", "remove-missing", "replace-missing",
        "test-fails", "index-out-of-range"])
def test_json_patch_errors(ops: Any, code: int) -> None:
    """Malformed patches are 400; patches that do not apply are 422."""
    with pytest.raises(PatchError) as info:
        json_patch({"a": 1, "l": []}, ops)
    assert info.value.code == code
