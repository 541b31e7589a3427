"""The committed tables: reproducible from kubectl 1.33, and agreeing with generated.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from podns.api.encoding.protobuf import schema as sch

from .test_protobuf_kubectl import kubectl_binary

SCHEMA_JSON = Path(sch.__file__).with_name("schema.json")
GENERATOR = Path(__file__).resolve().parents[2] / "tools" / "protobuf_schema.py"


def fields(message: str) -> dict[str, int]:
    return {f.json_name: f.number for f in sch.load().messages[message].fields}


@pytest.mark.timeout(60)
def test_schema_json_is_what_the_generator_reads_from_kubectl_1_33() -> None:
    """Given the kubectl 1.33 binary, then regenerating the tables reproduces schema.json."""
    out = subprocess.run([sys.executable, str(GENERATOR), kubectl_binary("1.33")],
                         capture_output=True, check=True, timeout=50).stdout
    assert out == SCHEMA_JSON.read_bytes()


def test_field_numbers_match_generated_proto() -> None:
    """Spot checks against k8s.io/apimachinery meta/v1 generated.proto (ObjectMeta,
    OwnerReference, DeleteOptions) and the runtime.Unknown envelope the decoder hand-codes."""
    assert fields(sch.META + "ObjectMeta") == {
        "name": 1, "generateName": 2, "namespace": 3, "selfLink": 4, "uid": 5,
        "resourceVersion": 6, "generation": 7, "creationTimestamp": 8, "deletionTimestamp": 9,
        "deletionGracePeriodSeconds": 10, "labels": 11, "annotations": 12,
        "ownerReferences": 13, "finalizers": 14, "managedFields": 17}
    assert fields(sch.META + "OwnerReference") == {
        "apiVersion": 5, "kind": 1, "name": 3, "uid": 4, "controller": 6, "blockOwnerDeletion": 7}
    delete = fields(sch.META + "DeleteOptions")
    assert {k: delete[k] for k in ("gracePeriodSeconds", "preconditions", "orphanDependents",
                                   "propagationPolicy", "dryRun")} == {
        "gracePeriodSeconds": 1, "preconditions": 2, "orphanDependents": 3,
        "propagationPolicy": 4, "dryRun": 5}


def test_pointer_and_omitempty_flags() -> None:
    """The JSON facts the decoder depends on, for fields where getting them wrong changes
    meaning: *bool conditions, *int32 replicas, non-omitempty port and serviceName."""
    conditions = sch.load().messages["k8s.io/api/discovery/v1.EndpointConditions"].fields
    by_name = {f.json_name: f for f in conditions}
    assert all(by_name[k].pointer for k in ("ready", "serving", "terminating"))
    sts = {f.json_name: f for f in sch.load().messages["k8s.io/api/apps/v1.StatefulSetSpec"].fields}
    assert sts["replicas"].pointer and not sts["serviceName"].omitempty
    port = {f.json_name: f for f in sch.load().messages["k8s.io/api/core/v1.ServicePort"].fields}
    assert not port["port"].omitempty and not port["port"].pointer and port["appProtocol"].pointer
    volume = sch.load().messages["k8s.io/api/core/v1.Volume"].fields
    assert [(f.json_name, f.inline) for f in volume] == [("name", False), ("", True)]
