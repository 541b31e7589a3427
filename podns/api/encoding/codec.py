"""Request body decoding and response content negotiation.

Bodies arrive as JSON (also with no Content-Type at all: the Python client sends none), YAML
(`application/yaml`, `application/apply-patch+yaml`, which kubectl actually fills with JSON),
or the Kubernetes protobuf envelope (kubectl 1.32+ `create`), decoded by
`podns.api.encoding.protobuf` (its message tables load on the first protobuf body). Responses are
always JSON; a client asking for `as=Table` gets a meta.k8s.io/v1 Table.
"""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from podns.api import statuserror
from podns.api.encoding import protobuf

Obj = dict[str, Any]

#: kube-apiserver's default request body limit (--max-request-bytes is 3 MiB for JSON bodies)
MAX_BODY_BYTES = 3 * 1024 * 1024

JSON = "application/json"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"
PROTOBUF = "application/vnd.kubernetes.protobuf"


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header, lower case; JSON when absent."""
    if not content_type:
        return JSON
    return content_type.split(";", 1)[0].strip().lower() or JSON


def decode_body(body: bytes, content_type: str | None, *, allow_list: bool = False,
                expect: tuple[str, str] | None = None) -> Any:
    """Parse a request body into Python data.

    `expect` is the (apiVersion, kind) the URL serves, for protobuf envelopes without TypeMeta.
    Raises ApiError 400 on malformed input, 413 when over `MAX_BODY_BYTES`, 415 for a format
    the server does not read. Unless `allow_list` (JSON patch), the result must be an object.
    """
    if len(body) > MAX_BODY_BYTES:
        raise statuserror.too_large(MAX_BODY_BYTES)
    mt = media_type(content_type)
    if mt == PROTOBUF:
        data = _decode_protobuf(body, expect)
    elif mt in ("application/yaml", "application/x-yaml", "application/apply-patch+yaml",
                "text/yaml"):
        data = _decode_yaml(body)
    elif mt in (JSON, "application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json", "text/plain", "*/*",
                "application/octet-stream"):
        data = decode_json(body)
    else:
        raise statuserror.unsupported_media_type(
            mt, (JSON, "application/yaml", PROTOBUF))
    if isinstance(data, list) and allow_list:
        return data
    if not isinstance(data, dict):
        raise statuserror.bad_request(
            "the body of the request must be a JSON object"
            if not allow_list else "the body of the request must be a JSON object or array")
    return data


def decode_json(body: bytes) -> Any:
    """Parse JSON, mapping syntax errors to 400 BadRequest worded like kube-apiserver."""
    if not body.strip():
        raise statuserror.bad_request("the body of the request is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise statuserror.bad_request(
            f"error decoding request body: invalid character at offset {exc.pos}: {exc.msg}"
        ) from None


#: aliases may add this many nodes to a YAML document once expanded (a handful of `<<: *defaults`
#: is fine; a "billion laughs" of a few hundred bytes expanding to 10^9 nodes is not)
YAML_ALIAS_BUDGET = 10_000
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, constructing what JSON can carry: timestamps and binary scalars
    stay the strings they were written as (Kubernetes reads YAML as JSON: a date is a string,
    a Secret's data is base64 text)."""


def _as_written(loader: _Loader, node: yaml.Node) -> str:
    """A scalar kept as the string it was written as (timestamps, binary)."""
    return loader.construct_yaml_str(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_written)
_Loader.add_constructor("tag:yaml.org,2002:binary", _as_written)


def _decode_yaml(body: bytes) -> Any:
    # kubectl's apply-patch+yaml bodies are JSON; try the fast path first.
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        loader = _Loader(body)  # reads the byte order mark: a ReaderError already
    except yaml.YAMLError as exc:
        raise statuserror.bad_request(f"error decoding YAML: {exc}") from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml(node)
        data = loader.construct_document(node)
        # through JSON: what an alias shared becomes copies (as Kubernetes' YAML-to-JSON makes),
        # and anything JSON cannot carry (an integer past 64 bits) is refused here
        return orjson.loads(orjson.dumps(data))
    except orjson.JSONEncodeError as exc:
        raise statuserror.bad_request(f"error decoding YAML: {exc}") from None
    except yaml.YAMLError as exc:
        raise statuserror.bad_request(f"error decoding YAML: {exc}") from None
    except RecursionError:
        raise statuserror.bad_request("error decoding YAML: the document is nested too deeply") from None
    finally:
        loader.dispose()


def _check_yaml(root: yaml.Node) -> None:
    """Refuse what JSON cannot carry or what would expand without bound, before anything is
    constructed: mapping keys that are not strings (or merge keys), recursive aliases, and
    aliases adding more than YAML_ALIAS_BUDGET nodes. Iterative: deep nesting is no recursion."""
    size: dict[int, int] = {}  # expanded node count of each finished node, by id
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        if done:
            children = _children(node)
            size[id(node)] = 1 + sum(size[id(c)] for c in children)
            open_.discard(id(node))
            continue
        if id(node) in size:
            continue
        if id(node) in open_:
            raise statuserror.bad_request("error decoding YAML: yaml: an alias refers to its own anchor")
        distinct += 1
        if isinstance(node, yaml.MappingNode):
            for key, _value in node.value:
                if not (isinstance(key, yaml.ScalarNode) and key.tag in (_STR, _MERGE)):
                    shown = key.value if isinstance(key, yaml.ScalarNode) else key.id
                    raise statuserror.bad_request(f"error decoding YAML: mapping key {shown} (line "
                                                  f"{key.start_mark.line + 1}) is not a string")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node))
    if size[id(root)] > distinct + YAML_ALIAS_BUDGET:
        raise statuserror.bad_request("error decoding YAML: yaml: document contains excessive aliasing")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _decode_protobuf(body: bytes, expect: tuple[str, str] | None) -> Any:
    try:
        return protobuf.decode(body, expect=expect)
    except protobuf.DecodeError as exc:
        if exc.code == 415:
            raise statuserror.ApiError(415, "UnsupportedMediaType", exc.message) from None
        raise statuserror.bad_request(exc.message) from None


def wants_table(accept: str | None) -> bool:
    """Whether the client's Accept header asks for a meta.k8s.io Table first."""
    if not accept:
        return False
    first = accept.split(",", 1)[0]
    return "as=table" in first.replace(" ", "").lower()


def dumps(data: Any) -> bytes:
    """Encode a response body."""
    return orjson.dumps(data)
