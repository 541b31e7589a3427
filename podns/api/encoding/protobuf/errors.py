"""The one error this package raises.

    DecodeError            (a request body podns cannot turn into an object)
      .code == 400         truncated or corrupt bytes, missing `k8s\\0` magic, a kind that is not
                           served or does not match the URL, a field of the wrong wire type
      .code == 415         an envelope whose contentEncoding/contentType podns cannot read

The API server turns it into a Kubernetes `Status` with that code; nothing else ever escapes
`decode` (a fuzz test holds it to that).
"""

from __future__ import annotations


class DecodeError(ValueError):
    """A protobuf request body that cannot be decoded; `code` is the HTTP status to answer."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
