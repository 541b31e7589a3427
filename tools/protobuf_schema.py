"""Generator of `podns/api/encoding/protobuf/schema.json`: message tables read out of a real
kubectl binary. A development tool: not part of the installed package.

Why from a binary: kubectl (client-go) is compiled from the very Go structs that define the
Kubernetes protobuf wire format and its JSON form. Their struct tags carry the protobuf field
number, wire type and name (`protobuf:"varint,1,opt,name=replicas"`) next to the JSON name and
`omitempty`; Go's type metadata says whether a field is a pointer, a slice, a map, an inline
embedded struct. Those are exactly the facts a decoder needs to turn protobuf into the JSON a
Go client would have sent, and reading them from the binary avoids hand-copying ~400 messages.

Run from the repository root (the output is committed):

    python tools/protobuf_schema.py /path/to/kubectl.1.33 > podns/api/encoding/protobuf/schema.json

Only ELF64 little-endian Go 1.21+ binaries (abi.Type layout) are understood.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from array import array
from typing import Any

#: (apiVersion, kind, Go package path, Go type name) of every kind the decoder accepts
ROOTS: tuple[tuple[str, str, str, str], ...] = (
    ("v1", "Namespace", "k8s.io/api/core/v1", "Namespace"),
    ("v1", "Service", "k8s.io/api/core/v1", "Service"),
    ("v1", "Pod", "k8s.io/api/core/v1", "Pod"),
    ("v1", "Node", "k8s.io/api/core/v1", "Node"),
    ("v1", "Event", "k8s.io/api/core/v1", "Event"),
    ("v1", "Endpoints", "k8s.io/api/core/v1", "Endpoints"),
    ("v1", "ConfigMap", "k8s.io/api/core/v1", "ConfigMap"),
    ("v1", "Secret", "k8s.io/api/core/v1", "Secret"),
    ("v1", "PersistentVolumeClaim", "k8s.io/api/core/v1", "PersistentVolumeClaim"),
    ("v1", "PersistentVolume", "k8s.io/api/core/v1", "PersistentVolume"),
    ("v1", "ReplicationController", "k8s.io/api/core/v1", "ReplicationController"),
    ("v1", "ServiceAccount", "k8s.io/api/core/v1", "ServiceAccount"),
    ("v1", "Binding", "k8s.io/api/core/v1", "Binding"),
    ("v1", "PodTemplate", "k8s.io/api/core/v1", "PodTemplate"),
    ("apps/v1", "StatefulSet", "k8s.io/api/apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment", "k8s.io/api/apps/v1", "Deployment"),
    ("apps/v1", "ReplicaSet", "k8s.io/api/apps/v1", "ReplicaSet"),
    ("apps/v1", "DaemonSet", "k8s.io/api/apps/v1", "DaemonSet"),
    ("apps/v1", "ControllerRevision", "k8s.io/api/apps/v1", "ControllerRevision"),
    ("batch/v1", "Job", "k8s.io/api/batch/v1", "Job"),
    ("batch/v1", "CronJob", "k8s.io/api/batch/v1", "CronJob"),
    ("policy/v1", "PodDisruptionBudget", "k8s.io/api/policy/v1", "PodDisruptionBudget"),
    ("policy/v1", "Eviction", "k8s.io/api/policy/v1", "Eviction"),
    ("discovery.k8s.io/v1", "EndpointSlice", "k8s.io/api/discovery/v1", "EndpointSlice"),
    ("coordination.k8s.io/v1", "Lease", "k8s.io/api/coordination/v1", "Lease"),
    ("autoscaling/v1", "Scale", "k8s.io/api/autoscaling/v1", "Scale"),
    ("autoscaling/v1", "HorizontalPodAutoscaler", "k8s.io/api/autoscaling/v1", "HorizontalPodAutoscaler"),
    ("autoscaling/v2", "HorizontalPodAutoscaler", "k8s.io/api/autoscaling/v2", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "Ingress", "k8s.io/api/networking/v1", "Ingress"),
    ("networking.k8s.io/v1", "IngressClass", "k8s.io/api/networking/v1", "IngressClass"),
    ("rbac.authorization.k8s.io/v1", "Role", "k8s.io/api/rbac/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "k8s.io/api/rbac/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "k8s.io/api/rbac/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "k8s.io/api/rbac/v1", "ClusterRoleBinding"),
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview", "k8s.io/api/authorization/v1",
     "SelfSubjectAccessReview"),
    ("authentication.k8s.io/v1", "TokenRequest", "k8s.io/api/authentication/v1", "TokenRequest"),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview", "k8s.io/api/authorization/v1",
     "SelfSubjectRulesReview"),
    # registered in every group version; schema.Schema.message_for maps them all here
    ("meta.k8s.io/v1", "DeleteOptions", "k8s.io/apimachinery/pkg/apis/meta/v1", "DeleteOptions"),
    ("v1", "Status", "k8s.io/apimachinery/pkg/apis/meta/v1", "Status"),
)

#: types with their own JSON form (custom MarshalJSON in Go); the decoder knows each by name
SPECIAL = {
    "k8s.io/apimachinery/pkg/apis/meta/v1.Time",
    "k8s.io/apimachinery/pkg/apis/meta/v1.MicroTime",
    "k8s.io/apimachinery/pkg/apis/meta/v1.Duration",
    "k8s.io/apimachinery/pkg/apis/meta/v1.FieldsV1",
    "k8s.io/apimachinery/pkg/api/resource.Quantity",
    "k8s.io/apimachinery/pkg/util/intstr.IntOrString",
    "k8s.io/apimachinery/pkg/runtime.RawExtension",
}

# Go reflect kinds (internal/abi)
K_BOOL, K_INT32, K_INT64, K_UINT32, K_UINT64 = 1, 5, 6, 10, 11
K_INT, K_UINT, K_FLOAT64 = 2, 7, 14
K_MAP, K_PTR, K_SLICE, K_STRING, K_STRUCT, K_ARRAY = 21, 22, 23, 24, 25, 17
SCALAR = {K_BOOL: "bool", K_INT32: "int32", K_INT64: "int64", K_UINT32: "uint32",
          K_UINT64: "uint64", K_INT: "int64", K_UINT: "uint64", K_FLOAT64: "double",
          K_STRING: "string"}

TAG_RE = re.compile(r'(\w+):"([^"]*)"')


class GoBinary:
    """Just enough of an ELF64 Go binary to walk its runtime type metadata."""

    def __init__(self, data: bytes) -> None:
        self.b = data
        shoff = struct.unpack_from("<Q", data, 0x28)[0]
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        strtab = raw[shstrndx][4]
        self.sections: dict[str, tuple[int, int, int]] = {}
        for name, typ, _flags, addr, off, size in raw:
            label = data[strtab + name:data.index(b"\0", strtab + name)].decode()
            if typ != 8:  # SHT_NOBITS (.bss) has no file bytes
                self.sections[label] = (addr, off, size)
        self.types = self.sections[".rodata"][0]

    def off(self, vaddr: int) -> int:
        for addr, off, size in self.sections.values():
            if addr and addr <= vaddr < addr + size:
                return vaddr - addr + off
        raise KeyError(hex(vaddr))

    def q(self, vaddr: int) -> int:
        return struct.unpack_from("<Q", self.b, self.off(vaddr))[0]

    def kind(self, t: int) -> int:
        return self.b[self.off(t) + 23] & 0x1F

    def _varint(self, o: int) -> tuple[int, int]:
        n = shift = 0
        while True:
            c = self.b[o]
            o += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return n, o

    def name(self, vaddr: int) -> tuple[str, str]:
        """An abi.Name: (name, tag)."""
        o = self.off(vaddr)
        flags = self.b[o]
        n, o = self._varint(o + 1)
        text = self.b[o:o + n].decode()
        tag = ""
        if flags & 2:
            m, o2 = self._varint(o + n)
            tag = self.b[o2:o2 + m].decode()
        return text, tag

    def type_name(self, t: int) -> str:
        o = self.off(t)
        s = self.name(self.types + struct.unpack_from("<i", self.b, o + 40)[0])[0]
        return s[1:] if self.b[o + 20] & 2 else s

    def pkg_path(self, t: int) -> str:
        o = self.off(t)
        if not self.b[o + 20] & 1:  # no uncommon type: unnamed
            return ""
        extra = {K_STRUCT: 80, K_PTR: 56, K_SLICE: 56, K_MAP: 88, K_ARRAY: 72}.get(self.kind(t), 48)
        return self.name(self.types + struct.unpack_from("<i", self.b, o + extra)[0])[0]

    def full_name(self, t: int) -> str:
        short = self.type_name(t)
        return f"{self.pkg_path(t)}.{short.split('.', 1)[-1]}"

    def struct_fields(self, t: int) -> list[tuple[str, str, int]]:
        ptr, n = self.q(t + 56), self.q(t + 64)
        return [(*self.name(self.q(ptr + 24 * i)), self.q(ptr + 24 * i + 8)) for i in range(n)]

    def all_structs(self) -> dict[str, int]:
        """Every struct type reachable from the typelinks, by full Go name."""
        _addr, off, size = self.sections[".typelink"]
        stack = [self.types + x for x in array("i", self.b[off:off + size])]
        seen: set[int] = set()
        out: dict[str, int] = {}
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            try:
                k = self.kind(t)
            except KeyError:
                continue
            if k in (K_PTR, K_SLICE, K_ARRAY):
                stack.append(self.q(t + 48))
            elif k == K_MAP:
                stack += [self.q(t + 48), self.q(t + 56)]
            elif k == K_STRUCT:
                if self.pkg_path(t):
                    out.setdefault(self.full_name(t), t)
                stack += [ft for _n, _tag, ft in self.struct_fields(t)]
        return out


def value_spec(go: GoBinary, t: int, todo: list[int]) -> list[Any]:
    """[type, ref] of a non-container Go type: a scalar name, "bytes", or ("msg", full name)."""
    k = go.kind(t)
    if k in SCALAR:
        return [SCALAR[k], None]
    if k == K_SLICE and go.kind(go.q(t + 48)) == 8:  # []byte
        return ["bytes", None]
    if k == K_STRUCT:
        todo.append(t)
        return ["msg", go.full_name(t)]
    raise ValueError(f"unsupported Go type {go.type_name(t)}")


def field_entry(go: GoBinary, name: str, tag: str, t: int, todo: list[int]) -> list[Any] | None:
    """One schema row [number, jsonName, type, flags, ref] for a struct field, or None."""
    tags = dict(TAG_RE.findall(tag))
    pb = tags.get("protobuf", "-")
    if pb == "-":
        return None
    parts = pb.split(",")
    number = int(parts[1])
    jtag = tags.get("json", name).split(",")
    json_name = jtag[0] if jtag[0] != "" or "inline" not in jtag else ""
    if json_name == "-":
        json_name = name  # json:"-" fields (RawExtension.Raw) are read by the special codecs
    flags = ""
    if "omitempty" in jtag[1:]:
        flags += "o"
    if "inline" in jtag[1:]:
        flags += "i"
    k = go.kind(t)
    if k == K_PTR:
        flags += "p"
        t = go.q(t + 48)
        k = go.kind(t)
    if parts[0] == "zigzag32" or parts[0] == "zigzag64":
        raise ValueError(f"zigzag field {name} not supported")
    if k == K_MAP:
        key = value_spec(go, go.q(t + 48), todo)
        val = value_spec(go, go.q(t + 56), todo)
        return [number, json_name, "map", flags, [key[0], val[0], val[1]]]
    if k == K_SLICE and go.kind(go.q(t + 48)) != 8:
        elem = go.q(t + 48)
        if go.kind(elem) == K_PTR:
            elem = go.q(elem + 48)
        typ, ref = value_spec(go, elem, todo)
        return [number, json_name, typ, flags + "r", ref]
    typ, ref = value_spec(go, t, todo)
    if typ == "double" and parts[0] != "fixed64":
        raise ValueError(f"float field {name} not fixed64")
    return [number, json_name, typ, flags, ref]


def build(go: GoBinary) -> dict[str, Any]:
    structs = go.all_structs()
    messages: dict[str, list[list[Any]]] = {}
    todo = [structs[f"{pkg}.{name}"] for _av, _k, pkg, name in ROOTS]
    while todo:
        t = todo.pop()
        full = go.full_name(t)
        if full in messages or full in SPECIAL:
            continue
        rows = []
        for name, tag, ft in go.struct_fields(t):
            row = field_entry(go, name, tag, ft, todo)
            if row is not None:
                rows.append(row)
        messages[full] = rows  # Go struct order: the order encoding/json writes keys in
    kinds = {f"{av} {kind}": f"{pkg}.{name}" for av, kind, pkg, name in ROOTS}
    return {"kinds": kinds, "messages": dict(sorted(messages.items()))}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        go = GoBinary(f.read())
    schema = build(go)
    # one message per line keeps diffs of regenerated tables readable
    lines = [f"  {json.dumps(name)}: {json.dumps(rows, separators=(',', ':'))}"
             for name, rows in schema["messages"].items()]
    sys.stdout.write('{"kinds": ' + json.dumps(schema["kinds"], indent=1) + ',\n"messages": {\n'
                     + ",\n".join(lines) + "\n}}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
