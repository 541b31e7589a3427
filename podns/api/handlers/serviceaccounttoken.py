"""ServiceAccount tokens: the `serviceaccounts/token` subresource (TokenRequest) and the bearer
token authenticator that accepts what it issued (kube-apiserver's `pkg/serviceaccount`
`jwt.go` and `claims.go`, `registry/core/serviceaccount/storage/token.go`).

A token is a JWT signed ES256 with the cluster's service-account key (`sa.key` in the data dir,
shared by every API server of a cluster like the CA, see `podns.api.server.certs`). Claims are
Kubernetes': `iss`, `sub` (`system:serviceaccount:<ns>:<name>`), `aud`, `exp`, `iat`, `nbf`,
`jti`, and the private `kubernetes.io` claim naming the namespace, the account (name, uid) and,
for a token bound to a Pod (TokenRequest `boundObjectRef`, as the node agent asks for its pods),
the pod (name, uid) and its node.

Verification (`TokenAuthenticator.authenticate`) accepts a token only when the signature is the
cluster key's, the algorithm is ES256, `exp` and `nbf` hold, one audience is the server's, and
the objects it names still exist with the uids it names: the account, and the pod unless it has
been deleted for more than 60 s (Kubernetes' grace, so that a pod's last requests during its
termination still work). Anything else is "not authenticated": the caller answers 401.
The user is `system:serviceaccount:<ns>:<name>` in the groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>` and `system:authenticated`, with the extra
`authentication.kubernetes.io/pod-name`/`pod-uid`/`credential-id` Kubernetes adds.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from podns.api import statuserror
from podns.api.handlers.authorization import (
    AUTHENTICATED_GROUP,
    UserInfo,
    service_account_groups,
    service_account_user,
)
from podns.api.resources.base import FieldError
from podns.objects import now_rfc3339, parse_time
from podns.store import errors as store_errors
from podns.store.interface import Store

Obj = dict[str, Any]

#: kube-apiserver's --service-account-issuer in kubeadm clusters; also the default audience
#: (kube-apiserver's --api-audiences defaults to the issuer)
ISSUER = "https://kubernetes.default.svc.cluster.local"
#: TokenRequest's default and minimum lifetimes (Kubernetes: 1 h, and "may not specify a
#: duration less than 10 minutes")
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600
#: the longest token podns issues (kube-apiserver caps with --service-account-max-token-expiration,
#: unset by default; 48 h keeps a leaked token's life bounded, twice the kubelet's 24 h refresh)
MAX_EXPIRATION = 48 * 3600
#: a deleted pod's tokens keep working this long after its deletionTimestamp (Kubernetes' 60 s)
POD_DELETION_GRACE = 60
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    """Kubernetes' key id: base64url (no padding) of the SHA-256 of the DER public key."""
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return _b64(hashlib.sha256(der).digest())


@dataclass(frozen=True, slots=True)
class Bound:
    """The object a token is bound to (TokenRequest `boundObjectRef`): a Pod here."""

    kind: str
    name: str
    uid: str
    node_name: str = ""
    node_uid: str = ""


class Signer:
    """Signs and checks JWTs with one EC P-256 key (ES256)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, *, issuer: str = ISSUER,
                 audiences: tuple[str, ...] = (ISSUER,)) -> None:
        self.key = key
        self.public = key.public_key()
        self.kid = key_id(self.public)
        self.issuer = issuer
        #: the audiences the API server accepts (kube-apiserver's --api-audiences)
        self.audiences = audiences

    def sign(self, claims: Obj) -> str:
        header = {"alg": "ES256", "kid": self.kid}
        signing_input = _b64(orjson.dumps(header)) + "." + _b64(orjson.dumps(claims))
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def verified_claims(self, token: str) -> Obj | None:
        """The claims of `token` when its signature is this key's (ES256), else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = orjson.loads(_unb64(parts[0]))
            raw_sig = _unb64(parts[2])
            if not isinstance(header, dict) or header.get("alg") != "ES256" or len(raw_sig) != 64:
                return None
            sig = encode_dss_signature(int.from_bytes(raw_sig[:32], "big"),
                                       int.from_bytes(raw_sig[32:], "big"))
            self.public.verify(sig, (parts[0] + "." + parts[1]).encode(), ec.ECDSA(hashes.SHA256()))
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, InvalidSignature, orjson.JSONDecodeError):
            return None
        return claims if isinstance(claims, dict) else None


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the service-account key is not an EC private key")
    return key


def _invalid(name: str, errs: list[FieldError]) -> statuserror.ApiError:
    return statuserror.invalid("TokenRequest", name, errs, "authentication.k8s.io")


def parse_request(body: Any, name: str) -> tuple[list[str], int, Obj | None]:
    """(audiences, expirationSeconds, boundObjectRef) of a TokenRequest body, validated as
    Kubernetes' `ValidateTokenRequest` (422 with a field path otherwise)."""
    if not isinstance(body, dict) or body.get("kind") not in (None, "", "TokenRequest"):
        raise statuserror.bad_request("the body of the request must be a TokenRequest object")
    spec = body.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    errs: list[FieldError] = []
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        errs.append(FieldError("spec.audiences", "FieldValueInvalid",
                               f"Invalid value: {audiences!r}: must be a list of strings"))
        audiences = []
    seconds = spec.get("expirationSeconds")
    if seconds is None:
        seconds = DEFAULT_EXPIRATION
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        errs.append(FieldError("spec.expirationSeconds", "FieldValueInvalid",
                               f"Invalid value: {seconds!r}: must be an integer"))
        seconds = DEFAULT_EXPIRATION
    elif seconds < MIN_EXPIRATION:
        errs.append(FieldError("spec.expirationSeconds", "FieldValueInvalid",
                               f"Invalid value: {seconds}: may not specify a duration less than "
                               "10 minutes"))
    elif seconds > 1 << 32:
        errs.append(FieldError("spec.expirationSeconds", "FieldValueTooLong",
                               f"Invalid value: {seconds}: may not specify a duration larger than "
                               "2^32 seconds"))
    ref = spec.get("boundObjectRef")
    if ref is not None and not isinstance(ref, dict):
        errs.append(FieldError("spec.boundObjectRef", "FieldValueInvalid",
                               "Invalid value: must be an object"))
        ref = None
    if ref is not None:
        kind = ref.get("kind")
        if kind not in ("Pod", "Secret", "Node"):
            errs.append(FieldError("spec.boundObjectRef.kind", "FieldValueNotSupported",
                                   f'Unsupported value: "{kind}": supported values: "Pod", "Secret", '
                                   '"Node"'))
        elif kind != "Pod":
            # podns binds tokens to pods only (the node agent's and kubectl's use)
            errs.append(FieldError("spec.boundObjectRef.kind", "FieldValueNotSupported",
                                   f'Unsupported value: "{kind}": supported values: "Pod"'))
        if not ref.get("name"):
            errs.append(FieldError("spec.boundObjectRef.name", "FieldValueRequired", "Required value"))
    if errs:
        raise _invalid(name, errs)
    return list(audiences), min(int(seconds), MAX_EXPIRATION), ref


def claims_for(signer: Signer, sa: Obj, *, audiences: list[str], seconds: int, bound: Bound | None,
               now: float | None = None) -> Obj:
    """The JWT claims of a token for ServiceAccount `sa` (claims.go `Claims`)."""
    md = sa.get("metadata") or {}
    ns, name = str(md.get("namespace") or ""), str(md.get("name") or "")
    issued = int(time.time() if now is None else now)
    k8s: Obj = {"namespace": ns, "serviceaccount": {"name": name, "uid": str(md.get("uid") or "")}}
    if bound is not None:
        k8s["pod"] = {"name": bound.name, "uid": bound.uid}
        if bound.node_name:
            k8s["node"] = {"name": bound.node_name, "uid": bound.node_uid}
    return {
        "aud": audiences or list(signer.audiences),
        "exp": issued + seconds,
        "iat": issued,
        "iss": signer.issuer,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": k8s,
        "nbf": issued,
        "sub": service_account_user(ns, name),
    }


def token_request_response(body: Obj, sa: Obj, token: str, claims: Obj) -> Obj:
    """The TokenRequest answered to the client (spec defaulted, status with the token)."""
    md = sa.get("metadata") or {}
    spec = dict(body.get("spec") or {}) if isinstance(body.get("spec"), dict) else {}
    spec["audiences"] = claims["aud"]
    spec["expirationSeconds"] = claims["exp"] - claims["iat"]
    spec.setdefault("boundObjectRef", None)
    return {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": md.get("name"), "namespace": md.get("namespace"),
                     "creationTimestamp": now_rfc3339()},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": now_rfc3339(float(claims["exp"]))},
    }


async def _get(store: Store, key: str) -> Obj | None:
    try:
        return await store.get(key)
    except store_errors.NotFound:
        return None


async def issue(signer: Signer, store: Store, namespace: str, name: str, body: Any) -> Obj:
    """Answer POST serviceaccounts/<name>/token: a signed token for the account, bound to the
    pod `boundObjectRef` names (which must exist, with that uid when given)."""
    audiences, seconds, ref = parse_request(body, name)
    sa = await _get(store, f"serviceaccounts/{namespace}/{name}")
    if sa is None:
        raise statuserror.not_found("serviceaccounts", name)
    bound = None
    if ref is not None:
        pod_name = str(ref.get("name") or "")
        pod = await _get(store, f"pods/{namespace}/{pod_name}")
        pmd = (pod or {}).get("metadata") or {}
        if pod is None:
            raise statuserror.not_found("pods", pod_name)
        if ref.get("uid") and ref["uid"] != pmd.get("uid"):
            raise statuserror.conflict("pods", pod_name, "", (
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                f"record. The object might have been deleted and then recreated"))
        pod_sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        if pod_sa != name:
            raise statuserror.bad_request(f'cannot bind token for serviceaccount "{name}" to pod '
                                          f'running with different serviceaccount name.')
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        node = await _get(store, f"nodes/{node_name}") if node_name else None
        bound = Bound("Pod", pod_name, str(pmd.get("uid") or ""), node_name,
                      str(((node or {}).get("metadata") or {}).get("uid") or ""))
    claims = claims_for(signer, sa, audiences=audiences, seconds=seconds, bound=bound)
    return token_request_response(body, sa, signer.sign(claims), claims)


class TokenAuthenticator:
    """Bearer tokens issued by `issue` -> the ServiceAccount user (see the module docstring)."""

    def __init__(self, signer: Signer, store: Store) -> None:
        self.signer = signer
        self.store = store

    @staticmethod
    def looks_like_jwt(token: str) -> bool:
        return token.count(".") == 2 and token.startswith("eyJ")

    async def authenticate(self, token: str, now: float | None = None) -> UserInfo | None:
        """The user of a valid token; None for anything else (the request gets a 401)."""
        claims = self.signer.verified_claims(token)
        if claims is None or claims.get("iss") != self.signer.issuer:
            return None
        t = time.time() if now is None else now
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, int) or t >= exp or (isinstance(nbf, int) and t < nbf):
            return None
        aud = claims.get("aud")
        auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not set(auds) & set(self.signer.audiences):
            return None
        k8s = claims.get("kubernetes.io")
        if not isinstance(k8s, dict):
            return None
        ns = k8s.get("namespace")
        sa_ref = k8s.get("serviceaccount") or {}
        if not isinstance(ns, str) or not isinstance(sa_ref, dict):
            return None
        sa_name = str(sa_ref.get("name") or "")
        if claims.get("sub") != service_account_user(ns, sa_name):
            return None
        sa = await self._get(f"serviceaccounts/{ns}/{sa_name}")
        if sa is None or (sa.get("metadata") or {}).get("uid") != sa_ref.get("uid") or \
                (sa.get("metadata") or {}).get("deletionTimestamp"):
            return None
        extra: list[tuple[str, tuple[str, ...]]] = []
        pod_ref = k8s.get("pod")
        if pod_ref is not None:
            if not isinstance(pod_ref, dict):
                return None
            pod = await self._get(f"pods/{ns}/{pod_ref.get('name')}")
            pmd = (pod or {}).get("metadata") or {}
            if pod is None or pmd.get("uid") != pod_ref.get("uid"):
                return None
            deleted = pmd.get("deletionTimestamp")
            if deleted and _epoch(deleted) + POD_DELETION_GRACE < t:
                return None
            extra += [(EXTRA_POD_NAME, (str(pod_ref.get("name")),)),
                      (EXTRA_POD_UID, (str(pod_ref.get("uid")),))]
            node_ref = k8s.get("node")
            if isinstance(node_ref, dict) and node_ref.get("name"):
                extra.append((EXTRA_NODE_NAME, (str(node_ref["name"]),)))
        if isinstance(claims.get("jti"), str):
            extra.append((EXTRA_CREDENTIAL_ID, (f"JTI={claims['jti']}",)))
        return UserInfo(service_account_user(ns, sa_name),
                        (*service_account_groups(ns), AUTHENTICATED_GROUP),
                        tuple(sorted(extra)), uid=str(sa_ref.get("uid") or ""))

    async def _get(self, key: str) -> Obj | None:
        try:
            return await self.store.get(key)
        except store_errors.StoreError:
            return None


def _epoch(rfc3339: str) -> float:
    value = parse_time(rfc3339)
    return value if value is not None else 0.0
