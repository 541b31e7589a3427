"""The web dashboard at /ui/, end to end: a real `podns up`, real kubectl, headless Chromium.

The browser test applies the reference scenario (examples/db-headless.yaml) with one change: the
readiness probe is an exec probe that fails while a file named after the pod exists, so the test
can fail exactly one pod's probe. It logs in with the read-only token, sees three ready
endpoints, fails db-1's probe, and sees the page change without reloading it. The screenshot is
kept as <tmp_path>/dashboard.png.

Chromium is Debian's (`/usr/bin/chromium`), driven by Playwright; the test is skipped when either
is missing (scripts/setup.sh installs both).
"""

from __future__ import annotations

import os
import shutil
import ssl
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import httpx
import pytest
import yaml

from tests.e2e.conftest import REPO, Podns

pytestmark = [pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def scenario_with_breakable_probe(fail_dir: Path) -> str:
    """examples/db-headless.yaml, with a readiness probe that fails while fail_dir/<pod> exists."""
    docs = list(yaml.safe_load_all((REPO / "examples" / "db-headless.yaml").read_text()))
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    container = sts["spec"]["template"]["spec"]["containers"][0]
    container["env"] += [
        {"name": "FAIL_DIR", "value": str(fail_dir)},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    container["readinessProbe"] = {
        "exec": {"command": ["sh", "-c", 'test ! -e "$FAIL_DIR/$POD_NAME"']},
        "periodSeconds": 1, "failureThreshold": 1, "initialDelaySeconds": 0,
    }
    return yaml.safe_dump_all(docs)


def client(podns: Podns, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=podns.api_url, headers=headers, timeout=10,
                        verify=ssl.create_default_context(cafile=str(podns.ca_path)))


@pytest.mark.timeout(30)
def test_ui_http_surface(podns_module: Podns) -> None:
    """The page is public and locked down (CSP, nosniff); data calls need a token; unknown files
    and missing tokens get Kubernetes Status errors, never a 500."""
    with client(podns_module, None) as anon:
        r = anon.get("/ui/")
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        assert "podns dashboard" in r.text
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        r = anon.get("/ui")
        assert r.status_code == 302 and r.headers["location"] == "/ui/"
        assert anon.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        r = anon.get("/ui/dns-metrics")
        assert r.status_code == 401 and r.json()["kind"] == "Status"
        assert anon.get("/api/v1/pods").status_code == 401
    with client(podns_module, podns_module.readonly_token) as ro:
        r = ro.get("/ui/missing.js")
        assert r.status_code == 404 and r.json()["reason"] == "NotFound"
        r = ro.get("/ui/dns-metrics")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["url"].startswith("http://127.0.0.1:") and body["url"].endswith("/metrics")
        names = {s["name"] for s in body["samples"]}
        assert "podns_dns_synced" in names
        assert not any(n.endswith("_bucket") for n in names)


def _launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.mark.timeout(90)
def test_dashboard_follows_a_failing_probe(podns_module: Podns, tmp_path: Path) -> None:
    """Given the reference scenario, when the user logs in with the read-only token, then the page
    shows three ready endpoints for db-service; when db-1's readiness probe starts failing, the
    page shows db-1 not ready (endpoint, pod, StatefulSet ordinal, Unhealthy event) without a
    reload, and DNS query counts appear; after an API server restart the page reconnects and shows
    db-1 ready again once its probe passes."""
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which("chromium")):
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    p = podns_module
    fail_dir = tmp_path / "fail"
    fail_dir.mkdir()
    r = p.kubectl("apply", "-f", "-", input=scenario_with_breakable_probe(fail_dir))
    assert r.returncode == 0, r.stderr

    with sync_api.sync_playwright() as pw:
        browser = _launch(pw)
        try:
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1366, "height": 900})
            for attempt in range(3):  # Chromium aborts a load when a link of the machine changes
                try:
                    page.goto(p.api_url + "/ui/")
                    break
                except sync_api.Error as exc:  # (another podns's netns pods come and go)
                    # seen as the error itself, or as the load interrupted by its error page
                    changed = "ERR_NETWORK_CHANGED" in str(exc) or "chrome-error://" in str(exc)
                    if not changed or attempt == 2:
                        raise
            page.fill("#token", "not-a-token")
            page.click("#login-form button")
            page.wait_for_selector("#login-error:has-text('rejected')", timeout=5000)
            page.fill("#token", p.readonly_token)
            page.click("#login-form button")

            svc = '[data-svc="default/db-service"]'
            page.wait_for_selector(f'{svc}[data-ready-count="3"][data-endpoint-count="3"]', timeout=30000)
            rows = page.locator('tr[data-endpoint^="default/db-service/"][data-ready="true"]')
            assert rows.count() == 3
            assert page.locator("#sts-list .ordinal.ok").count() == 3
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads

            (fail_dir / "db-1").touch()
            page.wait_for_selector(f'{svc}[data-ready-count="2"]', timeout=15000)
            page.wait_for_selector('tr[data-endpoint="default/db-service/db-1"][data-ready="false"]',
                                   timeout=5000)
            page.wait_for_selector('tr[data-pod="default/db-1"][data-state="NotReady"]', timeout=5000)
            page.wait_for_selector('tr[data-pod="default/db-1"] .events:has-text("Readiness probe failed")',
                                   timeout=10000)
            page.wait_for_selector('#sts-list .ordinal.bad[data-ordinal="1"]', timeout=5000)
            assert page.evaluate("window.__sameDocument") is True
            assert page.locator('tr[data-endpoint="default/db-service/db-0"][data-ready="true"]').count() == 1

            query = dns.message.make_query("db-service.default.svc.cluster.local", "A")
            for _ in range(5):
                dns.query.udp(query, p.dns_addr[0], port=p.dns_addr[1], timeout=2)
            total = "(document.querySelector('[data-dns=\"queries total\"]') || {}).textContent"
            page.wait_for_function(f"() => Number({total}) >= 5", timeout=15000)
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            # the API server restarts under the page: its watches reconnect (resuming from the last
            # resourceVersion, or relisting on 410) and it keeps following the cluster
            urls: list[str] = []
            page.on("request", lambda req: urls.append(req.url))
            p.restart()
            (fail_dir / "db-1").unlink()
            page.wait_for_selector(f'{svc}[data-ready-count="3"]', timeout=20000)
            page.wait_for_selector("#conn.live", timeout=10000)
            assert page.evaluate("window.__sameDocument") is True
            # it first tried to resume the pods watch from the last resourceVersion it had; the
            # restarted server no longer has that history (410 Gone), so it listed again
            pods = p.api_url + "/api/v1/pods"
            resumes = [i for i, u in enumerate(urls) if u.startswith(pods + "?watch=1")
                       and "resourceVersion=" in u and not u.endswith("resourceVersion=")]
            assert resumes, urls
            assert pods in urls[resumes[0]:], urls
        finally:
            browser.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
