"""Distributed mode without etcd quorum: quick 503/504 writes, reads and DNS on the last state.

Two `podns apiserver` processes (sharing CA and tokens through `--pki-from`, each kubeconfig
listing both through `--peer-servers`) over a 3-member etcd, and a `podns dns` watching through
them. With 2 of 3 members SIGKILLed, writes fail with a 503/504 Status within seconds (no
hang), GETs and LISTs answer 200 with the last state (the store's serializable reads), and DNS
goes on answering from its last state; once the members are back, writes work
again and DNS follows new changes without any restart.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes.client as kube_client
import kubernetes.config as kube_config
import pytest
import yaml

from podns.kube.config import load_kubeconfig
from tests.e2e._distributed import (
    a_records,
    api,
    dns_query,
    dns_server,
    start_apiservers,
    wait_dns_synced,
    wait_until,
)
from tests.e2e.conftest import REPO, Podns
from tests.etcd_cluster import (
    EtcdCluster,
    EtcdMember,
    etcd_available,
    free_port,
    start_etcd_cluster,
)

pytestmark = [pytest.mark.e2e, pytest.mark.etcd]

#: the store gives up on etcd after 5 s (podns.store.etcd.DEFAULT_TIMEOUT); allow for a busy CPU
QUICK = 9.0
CM_PATH = "/api/v1/namespaces/default/configmaps"
PODS = "/api/v1/namespaces/default/pods"
SLICE_PATH = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
NAME = "db.default.svc.cluster.local"


def podns_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "podns", *args], capture_output=True, text=True,
                          timeout=30, cwd=REPO)


def endpoint_slice(ips: list[str]) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "db-abc", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


def watch_lines(p: Podns, path: str, into: list[dict[str, Any]], until: str) -> None:
    """Read a watch through server `p`, appending each event to `into`, until an object
    named `until` arrives or the stream ends."""
    ctx = ssl.create_default_context(cafile=str(p.ca_path))
    req = urllib.request.Request(p.api_url + path,
                                 headers={"Authorization": f"Bearer {p.admin_token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=60) as r:
        for line in r:
            into.append(json.loads(line))
            if into[-1]["object"].get("metadata", {}).get("name") == until:
                return


@pytest.mark.timeout(30)
def test_apiserver_distributed_flags_reject_bad_input(tmp_path: Path) -> None:
    """given bad --pki-from / --peer-servers values, podns apiserver exits with a message
    naming the problem (never a traceback), before serving anything."""
    r = podns_cli("apiserver", "--store", "memory://", "--data-dir", str(tmp_path / "a"),
                  "--api-addr", "127.0.0.1:0", "--pki-from", str(tmp_path / "nowhere"))
    assert r.returncode != 0 and "missing ca.crt, ca.key, tokens.json" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr

    r = podns_cli("apiserver", "--store", "memory://", "--data-dir", str(tmp_path / "a"),
                  "--api-addr", "127.0.0.1:0", "--peer-servers", "127.0.0.1:6443")
    assert r.returncode == 2 and "is not a URL like https://" in r.stderr, r.stderr

    # a data dir that already holds another cluster's CA is refused, not silently mixed
    src, dst = tmp_path / "src", tmp_path / "dst"
    for d, ca in ((src, "CA-ONE"), (dst, "CA-TWO")):
        d.mkdir()
        (d / "ca.crt").write_text(ca)
        (d / "ca.key").write_text("key")
        (d / "tokens.json").write_text("{}")
        (d / "sa.key").write_text("sa")
    r = podns_cli("apiserver", "--store", "memory://", "--data-dir", str(dst),
                  "--api-addr", "127.0.0.1:0", "--pki-from", str(src))
    assert r.returncode != 0 and "differs from" in r.stderr, r.stderr
    assert (dst / "ca.crt").read_text() == "CA-TWO"

    # no store to talk to: say so and exit after --store-wait, no traceback
    r = podns_cli("apiserver", "--store", f"etcd://127.0.0.1:{free_port()}", "--data-dir",
                  str(tmp_path / "b"), "--api-addr", "127.0.0.1:0", "--store-wait", "1")
    assert r.returncode == 1 and "did not answer within 1s" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.timeout(60)
def test_apiserver_started_before_etcd_waits_for_it(tmp_path: Path) -> None:
    """given an API server started before its etcd member, when etcd comes up a moment
    later, then the API server starts serving without being restarted."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    member = EtcdMember("m0", free_port(), free_port(), tmp_path / "etcd" / "m0")
    cluster = EtcdCluster([member], tmp_path / "etcd", tmp_path / "etcd")
    cluster.initial_cluster = f"m0={member.peer_url}"
    (tmp_path / "etcd").mkdir()
    server = Podns(tmp_path / "api", "--store", cluster.url, command="apiserver")
    server.workdir.mkdir()
    starter = threading.Timer(2.0, cluster.start_member, args=(0,), kwargs={"state": "new"})
    starter.start()
    try:
        server.start()  # returns once /readyz answers 200
        code, made = api(server, "POST", CM_PATH, {"metadata": {"name": "late"}})
        assert code == 201, made
    finally:
        starter.cancel()
        server.kill()
        cluster.close()


@pytest.mark.timeout(60)
def test_object_etcd_refuses_as_too_large_is_413(tmp_path: Path) -> None:
    """given an API server over etcd and an object just under the API's own 1.5 MiB limit,
    which etcd refuses ("request is too large": key and request overhead count too), the
    create answers 413 RequestEntityTooLarge at once (was a 503 after retries) and stores
    nothing; a smaller object is created."""
    if not etcd_available():
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    cluster = start_etcd_cluster(1)
    server = Podns(tmp_path / "api", "--store", cluster.url, command="apiserver")
    server.workdir.mkdir()
    try:
        server.start()
        # size the object with a dry run (same fields, same lengths), so that its stored JSON
        # is a few bytes under the API's limit; a pod, since ConfigMaps and Secrets are capped
        # at 1 MiB of data by validation
        def pod(env: str) -> dict[str, Any]:
            return {"metadata": {"name": "huge"}, "spec": {"containers": [
                {"name": "c", "image": "x", "env": [{"name": "BIG", "value": env}]}]}}

        code, dry = api(server, "POST", f"{PODS}?dryRun=All", pod(""))
        assert code == 201, dry
        dry["metadata"].pop("resourceVersion", None)  # not part of the stored JSON
        stored = len(json.dumps(dry, separators=(",", ":")))
        t = time.monotonic()
        code, status = api(server, "POST", PODS, pod("a" * (1536 * 1024 - stored - 16)))
        assert code == 413, (code, status)
        assert status["reason"] == "RequestEntityTooLarge", status
        # refused by etcd, not by the API's own size check (its message names the limit)
        assert "etcdserver: request is too large" in status["message"], status
        assert time.monotonic() - t < 3
        assert api(server, "GET", f"{PODS}/huge")[0] == 404
        assert api(server, "POST", PODS, pod("a" * 1024))[0] == 201
    finally:
        server.kill()
        cluster.close()


@pytest.mark.timeout(120)
def slice_names(server: Podns) -> list[str]:
    """Names of the EndpointSlices in `default` (none when the list fails)."""
    code, got = api(server, "GET", SLICE_PATH)
    return [s["metadata"]["name"] for s in got["items"]] if code == 200 else []


def test_no_quorum_fails_fast_dns_keeps_serving_and_recovers(etcd3: EtcdCluster,
                                                              tmp_path: Path) -> None:
    """given two API servers and a DNS server over 3 etcd members, when 2 members are killed,
    then writes answer 503/504 within seconds, reads (GET, LIST; urllib, kubectl, the Python
    client) answer 200 with the last state, a watch stays open, DNS keeps its answers; when they
    return, writes succeed again and DNS follows a new change by itself."""
    a, b = start_apiservers(tmp_path, etcd3)
    try:
        # one CA and token set: A's kubeconfig lists both servers, and kubectl with B's
        # kubeconfig (B first) is trusted and authorized
        doc = yaml.safe_load(a.kubeconfig.read_text())
        assert doc["clusters"][0]["cluster"]["server"] == a.api_url
        assert load_kubeconfig(a.kubeconfig).servers == [a.api_url, b.api_url]
        assert load_kubeconfig(b.kubeconfig).servers == [b.api_url, a.api_url]
        out = a.kubectl("get", "ns", "kube-system", "-o", "name", kubeconfig=b.kubeconfig)
        assert out.returncode == 0 and out.stdout.strip() == "namespace/kube-system", out.stderr

        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "selector": {"app": "db"},
                        "ports": [{"name": "http", "port": 80}]}}
        assert api(a, "POST", "/api/v1/namespaces/default/services", svc)[0] == 201
        code, made = api(b, "POST", SLICE_PATH, endpoint_slice(["10.1.0.1", "10.1.0.2"]))
        assert code == 201, made

        proc, addr = dns_server(tmp_path, "dns", a.dns_kubeconfig)
        proc.start()
        try:
            wait_dns_synced(proc, addr)
            wait_until(lambda: a_records(dns_query(addr, NAME)) == ["10.1.0.1", "10.1.0.2"],
                       10, "DNS answers the two endpoints")

            # each API server lists itself in the `kubernetes` Service's slices (one per port)
            api_slices = ["kubernetes", f"kubernetes-{max(a.api_port, b.api_port)}"]
            wait_until(lambda: slice_names(a) == ["db-abc", *api_slices], 30,
                       "both API servers in the kubernetes Service's EndpointSlices")
            assert api(a, "POST", CM_PATH, {"metadata": {"name": "before"}})[0] == 201
            watched: list[dict[str, Any]] = []
            watcher = threading.Thread(target=watch_lines, daemon=True, args=(
                a, f"{CM_PATH}?watch=1&timeoutSeconds=90", watched, "after"))
            watcher.start()
            wait_until(lambda: watched, 10, "the configmap watch's first event")
            etcd3.stop_member(1)
            etcd3.stop_member(2)
            for server, method, path, body in ((a, "POST", CM_PATH, {"metadata": {"name": "x"}}),
                                               (b, "DELETE", f"{CM_PATH}/before", None)):
                t = time.monotonic()
                code, status = api(server, method, path, body)
                took = time.monotonic() - t
                assert code in (503, 504), (method, code, status)
                assert status["kind"] == "Status" and status["code"] == code
                assert took < QUICK, f"{method} took {took:.1f}s"

            # reads keep serving the last state (etcd serializable reads on the live member):
            # GET and LIST through httpx-like urllib, kubectl and the Python client
            for server in (a, b):
                t = time.monotonic()
                code, got = api(server, "GET", f"{CM_PATH}/before")
                assert code == 200 and got["metadata"]["name"] == "before", (code, got)
                code, got = api(server, "GET", SLICE_PATH)
                assert code == 200 and [s["metadata"]["name"] for s in got["items"]] == [
                    "db-abc", *api_slices]
                code, got = api(server, "GET", f"{CM_PATH}/x")
                assert code == 404, got  # the failed write left nothing behind
                assert time.monotonic() - t < QUICK
            out = a.kubectl("get", "configmaps", "before", "-o", "name", kubeconfig=b.kubeconfig,
                            timeout=30)
            assert out.returncode == 0 and out.stdout.strip() == "configmap/before", out.stderr
            out = a.kubectl("get", "endpointslices", "-o", "name", timeout=30)
            assert out.returncode == 0 and out.stdout.split() == [
                f"endpointslice.discovery.k8s.io/{n}" for n in ("db-abc", *api_slices)], out.stderr
            py = kube_config.new_client_from_config(config_file=str(a.kubeconfig))
            try:
                cms = kube_client.CoreV1Api(py).list_namespaced_config_map(
                    "default", _request_timeout=QUICK)
                assert "before" in [cm.metadata.name for cm in cms.items]
                svc_read = kube_client.CoreV1Api(py).read_namespaced_service(
                    "db", "default", _request_timeout=QUICK)
                assert svc_read.spec.cluster_ip == "None"
            finally:
                py.close()

            # DNS keeps answering from its last state while the API cannot read etcd
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                assert a_records(dns_query(addr, NAME)) == ["10.1.0.1", "10.1.0.2"]
                time.sleep(0.2)
            proc.check()

            etcd3.start_member(1)
            etcd3.start_member(2)
            etcd3.wait_healthy()
            t = time.monotonic()
            wait_until(lambda: api(a, "POST", CM_PATH, {"metadata": {"name": "after"}})[0] == 201,
                       30, "a write through A after quorum returned", step=0.2)
            assert time.monotonic() - t < 30
            code, got = api(b, "GET", f"{CM_PATH}/after")
            assert code == 200, got
            # the watch opened before the outage stayed open through it (the API server's
            # shared watch waited for etcd) and goes on with the change made after it
            watcher.join(20)
            assert not watcher.is_alive(), watched
            assert [e["type"] for e in watched] == ["ADDED"] * len(watched), watched
            names = [e["object"]["metadata"]["name"] for e in watched]
            assert names[0] == "before" and names[-1] == "after", names

            # DNS's watches resumed by themselves: a new endpoint shows up
            code, cur = api(b, "GET", f"{SLICE_PATH}/db-abc")
            new = endpoint_slice(["10.1.0.1", "10.1.0.2", "10.1.0.3"])
            new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            assert api(b, "PUT", f"{SLICE_PATH}/db-abc", new)[0] == 200
            wait_until(lambda: len(a_records(dns_query(addr, NAME))) == 3, 20,
                       "DNS serves the endpoint added after recovery")
        finally:
            proc.stop()
    finally:
        a.kill()
        b.kill()
