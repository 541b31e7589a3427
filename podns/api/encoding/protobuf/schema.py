"""The message tables: which field number is which JSON field, of which type.

`schema.json` is generated from a kubectl binary by `tools/protobuf_schema.py` (see docs/protobuf.md); this
module only loads it, once, and indexes it. A row is `[number, jsonName, type, flags, ref]`:

- type: `string`, `bool`, `int32`, `int64`, `uint32`, `uint64`, `double`, `bytes`, `msg`, `map`
- flags: `o` json omitempty, `p` Go pointer (present-vs-absent matters), `r` a list,
  `i` inlined into the parent object (`json:",inline"`, e.g. Volume.volumeSource)
- ref: the message name for `msg`; `[keyType, valueType, valueMessage]` for `map`

Rows keep Go struct order, which is the key order of Go's JSON encoding.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

META = "k8s.io/apimachinery/pkg/apis/meta/v1."
TIME = META + "Time"
MICRO_TIME = META + "MicroTime"
DURATION = META + "Duration"
FIELDS_V1 = META + "FieldsV1"
QUANTITY = "k8s.io/apimachinery/pkg/api/resource.Quantity"
INT_OR_STRING = "k8s.io/apimachinery/pkg/util/intstr.IntOrString"
RAW_EXTENSION = "k8s.io/apimachinery/pkg/runtime.RawExtension"


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message, as read from a schema row."""

    number: int
    json_name: str
    type: str
    ref: Any
    omitempty: bool
    pointer: bool
    repeated: bool
    inline: bool


@dataclass(frozen=True, slots=True)
class Message:
    name: str
    fields: tuple[Field, ...]
    by_number: dict[int, Field]


@dataclass(frozen=True, slots=True)
class Schema:
    #: "apiVersion kind" -> message name
    kinds: dict[str, str]
    messages: dict[str, Message]

    def message_for(self, api_version: str, kind: str) -> Message | None:
        """The message of a kind, or None when it is not served. DeleteOptions is registered in
        every group version (metav1.AddToGroupVersion), so a typed client of any group may send
        it labelled with its own apiVersion."""
        if kind == "DeleteOptions" and api_version:
            api_version = "meta.k8s.io/v1"
        name = self.kinds.get(f"{api_version} {kind}")
        return self.messages[name] if name else None


def _message(name: str, rows: list[list[Any]]) -> Message:
    fields = tuple(
        Field(number=n, json_name=j, type=t, ref=ref, omitempty="o" in fl, pointer="p" in fl,
              repeated="r" in fl, inline="i" in fl)
        for n, j, t, fl, ref in rows
    )
    return Message(name=name, fields=fields, by_number={f.number: f for f in fields})


@functools.cache
def load() -> Schema:
    """The schema shipped with the package (read on first use, then cached)."""
    raw = json.loads((Path(__file__).with_name("schema.json")).read_text())
    return Schema(
        kinds=dict(raw["kinds"]),
        messages={name: _message(name, rows) for name, rows in raw["messages"].items()},
    )
