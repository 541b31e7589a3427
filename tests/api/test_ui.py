"""The dashboard's DNS metrics proxy: Prometheus text -> JSON samples (podns/api/dashboard/ui.py)."""

from __future__ import annotations

import pytest

from podns.api.dashboard.ui import PUBLIC_PATHS, parse_metrics

EXPOSITION = """\
# HELP podns_dns_requests_total DNS requests by transport and query type.
# TYPE podns_dns_requests_total counter
podns_dns_requests_total{proto="udp",type="A"} 12
podns_dns_requests_total{proto="udp",type="SRV"} 3
podns_dns_response_size_bytes_bucket{proto="udp",le="100"} 9
podns_dns_response_size_bytes_count{proto="udp"} 15
podns_dns_synced 1
coredns_build_info{version="1.11.1",revision="ae2bbc2",goversion="go1.20"} 1 1700000000000
odd_label{msg="say \\"hi\\", ok"} 2
not_a_number NaN
"""


def test_samples_without_buckets() -> None:
    """Given a text exposition, then counters and gauges come back with their labels, histogram
    buckets and non-finite values are dropped, and timestamps and escaped quotes are handled."""
    got = {(s["name"], tuple(sorted(s["labels"].items()))): s["value"] for s in parse_metrics(EXPOSITION)}
    assert got[("podns_dns_requests_total", (("proto", "udp"), ("type", "A")))] == 12
    assert got[("podns_dns_requests_total", (("proto", "udp"), ("type", "SRV")))] == 3
    assert got[("podns_dns_response_size_bytes_count", (("proto", "udp"),))] == 15
    assert got[("podns_dns_synced", ())] == 1
    assert got[("coredns_build_info", (("goversion", "go1.20"), ("revision", "ae2bbc2"),
                                       ("version", "1.11.1")))] == 1
    assert got[("odd_label", (("msg", 'say \\"hi\\", ok'),))] == 2
    assert not any(name.endswith("_bucket") or name == "not_a_number" for name, _ in got)


@pytest.mark.parametrize("text", ["<html><body>404</body></html>", "metric_without_value"],
                         ids=["html", "no-value"])
def test_not_an_exposition(text: str) -> None:
    """Given a body that is not Prometheus text (a wrong URL), then parsing fails loudly."""
    with pytest.raises(ValueError, match="not a Prometheus sample"):
        parse_metrics(text)


def test_only_static_files_are_public() -> None:
    """The page's files are public (they hold no data); the metrics proxy is not."""
    assert {"/ui", "/ui/", "/ui/index.html", "/ui/app.js", "/ui/style.css"} == PUBLIC_PATHS
    assert "/ui/dns-metrics" not in PUBLIC_PATHS
