"""Crash safety: `podns apiserver` SIGKILLed under a writer loses no acknowledged write."""

from __future__ import annotations

import ssl
import threading
import time

import httpx
import pytest

from .conftest import Podns

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

CMS = "/api/v1/namespaces/default/configmaps"
#: kill/restart cycles while the writer runs
CYCLES = 3


def writer(p: Podns, acked: list[str], stop: threading.Event) -> None:
    """Create configmaps as fast as possible; remember each name answered 201."""
    headers = {"Authorization": f"Bearer {p.admin_token}"}
    tls = ssl.create_default_context(cafile=str(p.ca_path))
    with httpx.Client(base_url=p.api_url, verify=tls, headers=headers, timeout=2.0) as http:
        i = 0
        while not stop.is_set():
            name = f"cm-{i}"
            i += 1
            try:
                r = http.post(CMS, json={"metadata": {"name": name}, "data": {"i": str(i)}})
            except httpx.HTTPError:
                time.sleep(0.02)
                continue
            if r.status_code == 201:
                acked.append(name)


def test_acknowledged_writes_survive_sigkill(start_podns: object) -> None:
    """Given a writer creating objects, when the API server is SIGKILLed and restarted several
    times, then every object whose create got a 201 is present afterwards."""
    p: Podns = start_podns(command="apiserver")  # type: ignore[operator]
    acked: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=writer, args=(p, acked, stop), daemon=True)
    t.start()
    try:
        for _ in range(CYCLES):
            before = len(acked)
            deadline = time.monotonic() + 10
            while len(acked) < before + 50 and time.monotonic() < deadline:
                time.sleep(0.02)
            p.kill()
            p.start()
    finally:
        time.sleep(0.3)
        stop.set()
        t.join(10)
    assert len(acked) >= CYCLES * 50
    headers = {"Authorization": f"Bearer {p.admin_token}"}
    tls = ssl.create_default_context(cafile=str(p.ca_path))
    with httpx.Client(base_url=p.api_url, verify=tls, headers=headers) as http:
        items = http.get(CMS).json()["items"]
    present = {i["metadata"]["name"] for i in items}
    missing = [n for n in acked if n not in present]
    assert not missing, f"{len(missing)} acknowledged creates lost: {missing[:10]}"
    assert p.stop() == 0, "SIGTERM stops the server cleanly"
