"""Distributed mode, store side: two `podns apiserver` processes over one 3-member etcd.

What one API server writes the other serves, including to a watch that started before the
write; a write through one with a stale resourceVersion read from the other conflicts; and
after an etcd member is SIGKILLed both servers go on reading and writing.
"""

from __future__ import annotations

import functools
import json
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests._support import wait_until
from tests.e2e._distributed import api
from tests.e2e.conftest import Podns
from tests.etcd_cluster import EtcdCluster

pytestmark = [pytest.mark.e2e, pytest.mark.etcd, pytest.mark.timeout(120)]


def watch_lines(p: Podns, path: str, out: list[dict[str, Any]], stop: threading.Event) -> None:
    """Collect watch events from `path` into `out` until the stream ends or `stop` is set."""
    ctx = ssl.create_default_context(cafile=str(p.ca_path))
    req = urllib.request.Request(p.api_url + path, headers={"Authorization": f"Bearer {p.admin_token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        for line in r:
            if line.strip():
                out.append(json.loads(line))
            if stop.is_set():
                return


#: this module's polling defaults for tests._support.wait_until
wait_for = functools.partial(wait_until, timeout=15.0)


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_two_apiservers_share_one_etcd(etcd3: EtcdCluster, start_podns: Callable[..., Podns]) -> None:
    """given two API servers over one etcd, writes through either are seen through both,
    watches and CAS span servers, and losing an etcd member stops neither."""
    a = start_podns("--store", etcd3.url, command="apiserver")
    b = start_podns("--store", etcd3.url, command="apiserver")
    base = "/api/v1/namespaces/default/configmaps"

    code, listed = api(b, "GET", base)
    assert code == 200, listed
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_lines, daemon=True, args=(
        b, f"{base}?watch=true&resourceVersion={listed['metadata']['resourceVersion']}"
           "&timeoutSeconds=20", events, stop))
    watcher.start()
    time.sleep(0.3)

    code, created = api(a, "POST", base, cm("one", k="v1"))
    assert code == 201, created
    code, got = api(b, "GET", f"{base}/one")
    assert code == 200 and got["data"] == {"k": "v1"}
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    wait_for(lambda: any(e["object"]["metadata"]["name"] == "one" for e in events))
    assert events[0]["type"] == "ADDED"

    # B updates; A's stale copy then conflicts.
    got["data"] = {"k": "v2"}
    code, updated = api(b, "PUT", f"{base}/one", got)
    assert code == 200, updated
    code, status = api(a, "PUT", f"{base}/one", created | {"data": {"k": "stale"}})
    assert code == 409, status

    # Lose one etcd member: both servers keep working.
    etcd3.stop_member(0)
    code, two = api(a, "POST", base, cm("two"))
    assert code == 201, two
    code, got2 = api(b, "GET", f"{base}/two")
    assert code == 200, got2
    wait_for(lambda: any(e["object"]["metadata"]["name"] == "two" for e in events), timeout=20)
    stop.set()
    names = [(e["type"], e["object"]["metadata"]["name"]) for e in events]
    assert names[:3] == [("ADDED", "one"), ("MODIFIED", "one"), ("ADDED", "two")]
