"""RBAC with real kubectl (1.33 and 1.27): create role/rolebinding/clusterrolebinding, `auth
can-i` (with `--as` impersonation) before and after a binding, the read-only token and Secrets,
`auth whoami`, 403 wording, a binding to a missing role."""

from __future__ import annotations

import subprocess

import pytest

from tests._support import wait_until

from .conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120),
              pytest.mark.podns_args("--no-controllers", "--no-node", "--no-dns")]


def out(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"kubectl failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout


def can_i(podns: Podns, version: str, *args: str, **kw: object) -> str:
    """`kubectl auth can-i` prints yes/no (exit code 0/1)."""
    p = podns.kubectl("auth", "can-i", *args, version=version, **kw)  # type: ignore[arg-type]
    assert p.returncode in (0, 1), p.stderr
    return p.stdout.strip()


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_rbac_with_kubectl(podns_module: Podns, version: str) -> None:
    p, ns = podns_module, f"rbac-{version.replace('.', '-')}"
    k = p.kubectl
    out(k("create", "namespace", ns, version=version))
    sa = f"system:serviceaccount:{ns}:app"
    assert can_i(p, version, "watch", "endpointslices", "-n", ns, f"--as={sa}") == "no"

    out(k("create", "role", "endpoint-reader", "-n", ns, "--verb=get,list,watch",
          "--resource=endpointslices.discovery.k8s.io", version=version))
    # a binding to a role that does not exist denies
    out(k("create", "rolebinding", "dangling", "-n", ns, "--role=no-such-role",
          f"--serviceaccount={ns}:app", version=version))
    assert can_i(p, version, "watch", "endpointslices", "-n", ns, f"--as={sa}") == "no"
    out(k("create", "rolebinding", "app-reads", "-n", ns, "--role=endpoint-reader",
          f"--serviceaccount={ns}:app", version=version))
    wait_until(lambda: can_i(p, version, "watch", "endpointslices", "-n", ns, f"--as={sa}") == "yes",
               10, "the binding to take effect")
    assert can_i(p, version, "list", "secrets", "-n", ns, f"--as={sa}") == "no"

    # the account's real requests agree, with Kubernetes' 403 wording
    r = k("get", "secrets", "-n", ns, f"--as={sa}", version=version)
    assert r.returncode == 1
    assert (f'secrets is forbidden: User "{sa}" cannot list resource "secrets" in API group "" '
            f'in the namespace "{ns}"') in r.stderr
    out(k("get", "endpointslices", "-n", ns, f"--as={sa}", version=version))

    table = out(k("get", "rolebindings", "-n", ns, "-o", "wide", version=version))
    assert table.split("\n")[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert "Role/endpoint-reader" in table and f"{ns}/app" in table

    out(k("create", "clusterrolebinding", f"{ns}-viewer", "--clusterrole=view", "--user=viewer",
          version=version))
    wait_until(lambda: can_i(p, version, "list", "pods", "-A", "--as=viewer") == "yes", 10,
               "the cluster binding to take effect")
    assert can_i(p, version, "list", "secrets", "-A", "--as=viewer") == "no"
    assert "cluster-admin" in out(k("get", "clusterroles", version=version))


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_readonly_token_and_whoami(podns_module: Podns, version: str) -> None:
    p = podns_module
    ro = p.readonly_kubeconfig
    assert can_i(p, version, "list", "secrets", kubeconfig=ro) == "no"
    assert can_i(p, version, "list", "pods", kubeconfig=ro) == "yes"
    r = p.kubectl("get", "secrets", kubeconfig=ro, version=version)
    assert 'User "readonly" cannot list resource "secrets"' in r.stderr
    if version == "1.27":  # whoami is beta in 1.27 (v1beta1), GA in 1.28 (v1)
        return
    who = out(p.kubectl("auth", "whoami", version=version))
    assert "admin" in who and "system:masters" in who
    who = out(p.kubectl("auth", "whoami", "--as=system:serviceaccount:default:app", version=version))
    assert "system:serviceaccount:default:app" in who and "system:serviceaccounts:default" in who
