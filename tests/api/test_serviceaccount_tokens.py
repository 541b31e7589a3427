"""ServiceAccounts over HTTP: TokenRequest (claims, validation), the token authenticator (user,
groups, 401 for expired/forged/wrong-audience tokens and for tokens of deleted or re-created
accounts and pods) and the ServiceAccount admission of Pods (default account, projected volume,
automount opt-out, missing account)."""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from podns.api.handlers import serviceaccounttoken as sat
from tests.api.conftest import Api

SA_URL = "/api/v1/namespaces/default/serviceaccounts"
PODS = "/api/v1/namespaces/default/pods"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture
def api(real_api: Api) -> Api:
    return real_api


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


async def make_sa(api: Api, name: str) -> dict[str, Any]:
    r = await api.post(SA_URL, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}})
    assert r.status == 201, r.body
    return r.body  # type: ignore[no-any-return]


async def token(api: Api, name: str, spec: dict[str, Any] | None = None, status: int = 201) -> Any:
    r = await api.post(f"{SA_URL}/{name}/token", {"apiVersion": "authentication.k8s.io/v1",
                                                 "kind": "TokenRequest", "spec": spec or {}})
    assert r.status == status, r.body
    return r.body


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x"}], **spec}}


async def whoami(api: Api, tok: str) -> Any:
    return await api.post(WHOAMI, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                          token=tok)


async def test_token_claims_and_user(api: Api) -> None:
    """given an account, a TokenRequest returns an ES256 JWT with Kubernetes' claims, and the
    token authenticates as the account with its groups."""
    sa = await make_sa(api, "app")
    got = await token(api, "app", {"expirationSeconds": 600})
    assert got["kind"] == "TokenRequest" and got["spec"]["expirationSeconds"] == 600
    tok = got["status"]["token"]
    header = orjson.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["kid"]
    c = claims_of(tok)
    assert c["sub"] == "system:serviceaccount:default:app"
    assert c["iss"] == sat.ISSUER and c["aud"] == [sat.ISSUER]
    assert c["exp"] - c["iat"] == 600 and c["nbf"] == c["iat"]
    assert c["kubernetes.io"] == {"namespace": "default", "serviceaccount": {
        "name": "app", "uid": sa["metadata"]["uid"]}}
    r = await whoami(api, tok)
    assert r.status == 201, r.body
    user = r.body["status"]["userInfo"]
    assert user["username"] == "system:serviceaccount:default:app"
    assert user["groups"] == ["system:serviceaccounts", "system:serviceaccounts:default",
                              "system:authenticated"]
    assert user["uid"] == sa["metadata"]["uid"]
    # nothing granted: Kubernetes' 403 wording
    r = await api.get("/api/v1/namespaces/default/secrets", token=tok)
    assert r.status == 403
    assert r.body["message"] == ('secrets is forbidden: User "system:serviceaccount:default:app" cannot '
                                 'list resource "secrets" in API group "" in the namespace "default"')


@pytest.mark.parametrize("spec,field", [
    ({"expirationSeconds": 599}, "spec.expirationSeconds"),
    ({"expirationSeconds": "x"}, "spec.expirationSeconds"),
    ({"audiences": "a"}, "spec.audiences"),
    ({"boundObjectRef": {"kind": "Job", "name": "j"}}, "spec.boundObjectRef.kind"),
    ({"boundObjectRef": {"kind": "Pod"}}, "spec.boundObjectRef.name"),
], ids=["too-short", "not-int", "audiences-not-list", "bad-kind", "no-name"])
async def test_token_request_validation(api: Api, spec: dict[str, Any], field: str) -> None:
    """given a bad TokenRequest, the answer is 422 naming the field."""
    await make_sa(api, "app")
    body = await token(api, "app", spec, status=422)
    assert body["reason"] == "Invalid"
    assert field in [c["field"] for c in body["details"]["causes"]]


async def test_token_for_missing_account_or_pod(api: Api) -> None:
    """given no such account (or a bound pod that does not exist), 404."""
    body = await token(api, "nobody", status=404)
    assert body["message"] == 'serviceaccounts "nobody" not found'
    await make_sa(api, "app")
    body = await token(api, "app", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
                       status=404)
    assert body["message"] == 'pods "p" not found'


async def test_bad_tokens_are_401(api: Api) -> None:
    """given an expired, not-yet-valid, forged, wrong-audience or garbled token, 401 and never
    a 500."""
    sa = await make_sa(api, "app")
    signer = api.server.sa_signer
    assert signer is not None
    now = time.time()

    def signed(**over: Any) -> str:
        c = sat.claims_for(signer, sa, audiences=[], seconds=600, bound=None, now=now)
        c.update(over)
        return signer.sign(c)

    forger = sat.Signer(ec.generate_private_key(ec.SECP256R1()))
    good = signer.sign(sat.claims_for(signer, sa, audiences=[], seconds=600, bound=None))
    head, body, sig = good.split(".")
    other = base64.urlsafe_b64encode(orjson.dumps({**claims_of(good), "sub": "x"})).rstrip(b"=").decode()
    bad = {
        "expired": signed(exp=int(now) - 1),
        "not-yet": signed(nbf=int(now) + 600),
        "wrong-audience": signed(aud=["https://elsewhere"]),
        "wrong-issuer": signed(iss="https://elsewhere"),
        "forged": forger.sign(sat.claims_for(forger, sa, audiences=[], seconds=600, bound=None)),
        "tampered": f"{head}.{other}.{sig}",
        "alg-none": "eyJhbGciOiJub25lIn0." + body + ".",
        "garbage": "eyJ.x.y",
    }
    assert (await whoami(api, good)).status == 201
    for what, tok in bad.items():
        r = await whoami(api, tok)
        assert r.status == 401, (what, r.body)
        assert r.body["reason"] == "Unauthorized"


async def test_token_dies_with_account_or_pod(api: Api) -> None:
    """given a token bound to a pod, it stops working when the pod is deleted (or re-created
    with a new uid); an account's tokens stop when it is re-created."""
    await make_sa(api, "app")
    r = await api.post(PODS, pod("p", serviceAccountName="app"))
    assert r.status == 201, r.body
    uid = r.body["metadata"]["uid"]
    got = await token(api, "app", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p",
                                                       "uid": uid}})
    tok = got["status"]["token"]
    c = claims_of(tok)
    assert c["kubernetes.io"]["pod"] == {"name": "p", "uid": uid}
    r = await whoami(api, tok)
    assert r.status == 201
    assert r.body["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-uid"] == [uid]
    # a pod of another account cannot be bound to this one
    await make_sa(api, "other")
    body = await token(api, "other", {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}},
                       status=400)
    assert "different serviceaccount" in body["message"]
    # an unscheduled pod is deleted at once
    assert (await api.delete(f"{PODS}/p")).status == 200
    assert (await whoami(api, tok)).status == 401
    r = await api.post(PODS, pod("p", serviceAccountName="app"))
    assert r.status == 201
    assert (await whoami(api, tok)).status == 401  # same name, new uid

    plain = (await token(api, "app"))["status"]["token"]
    assert (await whoami(api, plain)).status == 201
    assert (await api.delete(f"{SA_URL}/app")).status == 200
    await make_sa(api, "app")
    assert (await whoami(api, plain)).status == 401


async def test_pod_admission(api: Api) -> None:
    """given pods, the ServiceAccount admission defaults the account, adds the projected token
    volume mounted in every container, honours automountServiceAccountToken on the pod and the
    account, and refuses a missing account with Kubernetes' 403."""
    r = await api.post(PODS, pod("a", initContainers=[{"name": "i", "image": "x"}]))
    assert r.status == 201, r.body
    spec = r.body["spec"]
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    (vol,) = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"]["sources"][0] == {"serviceAccountToken": {"expirationSeconds": 3607,
                                                                      "path": "token"}}
    for c in spec["containers"] + spec["initContainers"]:
        assert c["volumeMounts"] == [{"name": vol["name"], "readOnly": True, "mountPath": MOUNT}]
    # the default account was made when the controller had not yet
    assert (await api.get(f"{SA_URL}/default")).status == 200

    r = await api.post(PODS, pod("b", automountServiceAccountToken=False))
    assert r.status == 201 and "volumes" not in r.body["spec"]
    await api.post(SA_URL, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet"},
                            "automountServiceAccountToken": False})
    r = await api.post(PODS, pod("c", serviceAccountName="quiet"))
    assert r.status == 201 and "volumes" not in r.body["spec"]
    r = await api.post(PODS, pod("d", serviceAccountName="quiet", automountServiceAccountToken=True))
    assert r.status == 201 and len(r.body["spec"]["volumes"]) == 1

    r = await api.post(PODS, pod("e", serviceAccountName="app"))
    assert r.status == 403
    assert r.body["message"] == ('pods "e" is forbidden: error looking up service account default/app: '
                                 'serviceaccount "app" not found')
