"""Bearer-token authentication of the API server (authorization: `podns.api.handlers.authorization`).

Two tokens live in the data dir (`tokens.json`, mode 0600), generated on first start and reused
after: the admin token (user `admin` in group `system:masters`: every request) and the read-only
token (user `readonly`, bound to the `view` ClusterRole by the default RBAC policy, see
`podns.api.handlers.rbacpolicy`). Every request except the health and version endpoints needs one;
without a valid token the answer is 401 Unauthorized. Tokens are compared in constant time.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from podns.api.handlers.authorization import ADMIN, READONLY, UserInfo

#: paths answered without a token (as kube-apiserver's system:public-info-viewer allows)
PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})



@dataclass(frozen=True, slots=True)
class Tokens:
    """The bearer tokens of one data dir."""

    admin: str
    readonly: str

    def user_for(self, token: str) -> UserInfo | None:
        """The user a token authenticates as, or None when it is unknown (also for a token that
        is not valid UTF-8: HTTP headers arrive as bytes, aiohttp keeps undecodable ones as
        surrogates)."""
        try:
            given = token.encode()
        except UnicodeEncodeError:
            return None
        user = None
        # compare against both, always, so timing does not reveal which one matched
        if hmac.compare_digest(given, self.admin.encode()):
            user = ADMIN
        if hmac.compare_digest(given, self.readonly.encode()):
            user = READONLY
        return user


def load_or_create_tokens(data_dir: Path) -> Tokens:
    """Read `<data_dir>/tokens.json`, creating it with fresh random tokens the first time."""
    path = data_dir / "tokens.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return Tokens(admin=raw["admin"], readonly=raw["readonly"])
    tokens = Tokens(admin=secrets.token_urlsafe(32), readonly=secrets.token_urlsafe(32))
    _write_private(path, json.dumps({"admin": tokens.admin, "readonly": tokens.readonly}))
    return tokens


IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _write_private(path: Path, text: str | bytes) -> None:
    """Write a file only the owner can read, atomically (no half-written secrets on a crash).

    The content goes to a new temp file (O_EXCL|O_NOFOLLOW: never a leftover or a planted
    symlink) created 0600 and fchmod-ed to 0600 whatever the umask, then renamed over `path`:
    the secret is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a leftover (or a symlink): removed, never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text.encode() if isinstance(text, str) else text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


write_private = _write_private
