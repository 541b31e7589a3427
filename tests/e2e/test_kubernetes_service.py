"""The `kubernetes` Service in `default`, kept by the API server (kube-apiserver's endpoint
reconciler): a fresh cluster has it with the first service-CIDR address, its EndpointSlice and
Endpoints list the API server's address and port, it comes back after a delete, an API server's
Lease that is not renewed drops out of the endpoints, and cluster DNS answers the standard
in-cluster name with the ClusterIP; the serving certificate covers that IP and name."""

from __future__ import annotations

import datetime
import ipaddress
import json
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import pytest
from cryptography import x509

from podns.api.server.apiserver import DEFAULT_SERVICE_CIDR
from tests._support import wait_until as wait
from tests.e2e.conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150),
              pytest.mark.podns_args("--dns-upstream", "none", "--no-node")]

NAME = "kubernetes.default.svc.cluster.local."
CLUSTER_IP = str(ipaddress.ip_network(DEFAULT_SERVICE_CIDR)[1])


def get(p: Podns, *args: str) -> Any:
    """The object as JSON, or None when kubectl cannot get it (e.g. NotFound)."""
    cp = p.kubectl("get", *args, "-o", "json")
    return json.loads(cp.stdout) if cp.returncode == 0 else None


def query(p: Podns, name: str, rdtype: str) -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), p.dns_addr[0], port=p.dns_addr[1],
                         timeout=2)


def slice_addresses(p: Podns) -> list[str] | None:
    s = get(p, "endpointslice", "kubernetes", "-n", "default")
    return None if s is None else sorted(a for e in s.get("endpoints") or [] for a in e["addresses"])


def check_service(p: Podns) -> None:
    """Service, EndpointSlice and Endpoints as kube-apiserver writes them."""
    svc = wait(lambda: get(p, "svc", "kubernetes", "-n", "default"), what="Service kubernetes")
    assert svc["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    # the range itself, for node agents (podns's stand-in for the ServiceCIDR object `kubernetes`)
    assert svc["metadata"]["annotations"] == {"podns.io/service-cidr": DEFAULT_SERVICE_CIDR}
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"] == CLUSTER_IP
    assert svc["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                     "targetPort": p.api_port}]
    assert "selector" not in svc["spec"]
    es = wait(lambda: get(p, "endpointslice", "kubernetes", "-n", "default"), what="EndpointSlice")
    assert es["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert es["addressType"] == "IPv4"
    assert [e["addresses"] for e in es["endpoints"]] == [["127.0.0.1"]]
    assert es["endpoints"][0]["conditions"]["ready"] is True
    assert es["ports"] == [{"name": "https", "port": p.api_port, "protocol": "TCP"}]
    ep = wait(lambda: get(p, "endpoints", "kubernetes", "-n", "default"), what="Endpoints")
    assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                              "ports": [{"name": "https", "port": p.api_port, "protocol": "TCP"}]}]


def test_fresh_cluster_has_the_kubernetes_service_in_dns(podns_module: Podns) -> None:
    p = podns_module
    check_service(p)
    wait(lambda: {rd.to_text() for rrset in query(p, NAME, "A").answer for rd in rrset} == {CLUSTER_IP},
         what="kubernetes.default.svc A -> ClusterIP")
    srv = query(p, "_https._tcp." + NAME, "SRV")
    assert [rd.to_text() for rd in srv.answer[0]] == [f"0 100 443 {NAME}"]
    cert = x509.load_pem_x509_certificate((p.data_dir / "apiserver.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(CLUSTER_IP) in san.get_values_for_type(x509.IPAddress)
    assert {"kubernetes.default.svc", NAME.rstrip(".")} <= set(san.get_values_for_type(x509.DNSName))


def test_deleted_service_and_slice_come_back(podns_module: Podns) -> None:
    p = podns_module
    check_service(p)
    # Endpoints first: deleting the Service takes its Endpoints along (endpoints controller)
    for kind in ("endpoints", "endpointslice", "svc"):
        p.kubectl("delete", kind, "kubernetes", "-n", "default", check=True)
    check_service(p)


def test_service_cidr_annotation_comes_back(podns_module: Podns) -> None:
    """given the `kubernetes` Service without its service-CIDR annotation (removed by hand, or
    made by an older podns), the API server adds it again at its next round."""
    p = podns_module
    check_service(p)
    p.kubectl("annotate", "svc", "kubernetes", "-n", "default", "podns.io/service-cidr-", check=True)
    wait(lambda: (get(p, "svc", "kubernetes", "-n", "default") or {}).get("metadata", {})
         .get("annotations", {}).get("podns.io/service-cidr") == DEFAULT_SERVICE_CIDR,
         timeout=30, what="annotation back")


def test_api_server_lease_not_renewed_drops_out(podns_module: Podns) -> None:
    """A second API server's Lease adds its address; once it expires the address goes."""
    p = podns_module
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {
        "name": f"apiserver-endpoint-127-0-0-2-{p.api_port}", "namespace": "kube-system",
        "labels": {"apiserver.podns.io/endpoint": "true"}},
        "spec": {"holderIdentity": f"127.0.0.2:{p.api_port}", "leaseDurationSeconds": 12,
                 "renewTime": now}}
    p.kubectl("apply", "-f", "-", input=json.dumps(lease), check=True)
    # listed at the next round (every 5 s, well inside the 12 s lease), gone once it expired
    wait(lambda: slice_addresses(p) == ["127.0.0.1", "127.0.0.2"], what="second API server listed")
    wait(lambda: slice_addresses(p) == ["127.0.0.1"], timeout=60, what="expired API server removed")
    check_service(p)
