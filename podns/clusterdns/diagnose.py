"""`podns dig` internals: resolve like a pod would, and explain a name that does not resolve.

`search_names(name, namespace, zone)` expands a name with a pod's resolv.conf
(`search <ns>.svc.<zone> svc.<zone> <zone>`, `options ndots:5`), in the order glibc tries them.
`lookup(...)` asks the DNS server for each candidate until one has records. `explain(...)`
asks the API (a few GETs/LISTs, never a watch) why a cluster name has no records: the
namespace, Service, EndpointSlices and Pods behind it, in the words a user needs ("no ready
endpoints: db-1 (pod db-1 not ready: ContainersNotReady)").
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from podns.clusterdns.handler import pod_ip
from podns.kube import errors, resources
from podns.objects.endpointslices import endpoint_ready
from podns.objects.wellknown import SERVICE_NAME_LABEL

#: glibc's default for Kubernetes pods (kubelet writes ndots:5)
NDOTS = 5


def search_names(name: str, namespace: str, zone: str = "cluster.local") -> list[str]:
    """Fully qualified candidates in resolver order (absolute first when dots >= ndots)."""
    if name.endswith("."):
        return [name]
    search = [f"{name}.{namespace}.svc.{zone}.", f"{name}.svc.{zone}.", f"{name}.{zone}."]
    absolute = name + "."
    return [absolute, *search] if name.count(".") >= NDOTS else [*search, absolute]


@dataclass
class Result:
    """What the lookup found: the name that answered (or None) and every attempt's rcode."""

    name: str | None
    answer: dns.message.Message | None
    tried: list[tuple[str, str]] = field(default_factory=list)


async def lookup(name: str, rdtype: str, namespace: str, server: tuple[str, int], *,
                 zone: str = "cluster.local", tcp: bool = False, timeout: float = 2.0) -> Result:
    """Try each search candidate; the first with records wins. Raises dns.exception.Timeout."""
    result = Result(None, None)
    for candidate in search_names(name, namespace, zone):
        query = dns.message.make_query(candidate, rdtype)
        if tcp:
            reply = await dns.asyncquery.tcp(query, server[0], port=server[1], timeout=timeout)
        else:
            reply, _ = await dns.asyncquery.udp_with_fallback(query, server[0], port=server[1],
                                                              timeout=timeout)
        rcode = dns.rcode.to_text(reply.rcode())
        result.tried.append((candidate, rcode if reply.answer or rcode != "NOERROR" else "NODATA"))
        if reply.rcode() == dns.rcode.NOERROR and reply.answer:
            result.name, result.answer = candidate, reply
            return result
    return result


def _labels_under(name: str, zone: str, kind: str) -> list[str] | None:
    suffix = f".{kind}.{zone}."
    if not name.lower().endswith(suffix):
        return None
    return name.lower()[:-len(suffix)].split(".")


async def explain(client: Any, candidates: list[str], zone: str = "cluster.local") -> list[str]:
    """Reasons, from the API, why these names have no records (one line each)."""
    lines: list[str] = []
    for name in candidates:
        labels = _labels_under(name, zone, "svc")
        if labels and 2 <= len(labels) <= 3 and all(labels):
            lines.extend(await _explain_service(client, labels, name))
            return lines
        labels = _labels_under(name, zone, "pod")
        if labels and len(labels) == 2:
            lines.extend(await _explain_pod(client, labels))
            return lines
    lines.append("the name is not under the cluster zone's svc/pod subtrees: nothing to ask the API")
    return lines


async def _explain_service(client: Any, labels: list[str], name: str) -> list[str]:
    host = labels[0] if len(labels) == 3 else None
    svc_name, ns = labels[-2], labels[-1]
    if svc_name.startswith("_"):
        return [f"{name}: SRV names look like _<port>._<proto>.<service>.<namespace>.svc.<zone>"]
    try:
        await client.get(resources.NAMESPACES, ns)
    except errors.NotFound:
        return [f"namespace {ns!r} does not exist"]
    try:
        svc = await client.get(resources.SERVICES, svc_name, ns)
    except errors.NotFound:
        listed = await client.list(resources.SERVICES, ns)
        names = sorted(s["metadata"]["name"] for s in listed.get("items") or [])
        return [f"no Service {svc_name!r} in namespace {ns!r}"
                + (f" (services there: {', '.join(names[:10])})" if names else " (it has no services)")]
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return [f"Service {ns}/{svc_name} is an ExternalName ({spec.get('externalName')}): "
                "only CNAME, nothing below it"]
    slices = (await client.list(resources.ENDPOINTSLICES, ns,
                                label_selector=f"{SERVICE_NAME_LABEL}={svc_name}")).get("items") or []
    endpoints = [ep for sl in slices for ep in sl.get("endpoints") or []]
    ready = [ep for ep in endpoints if endpoint_ready(ep)]
    lines = []
    if host is not None:
        mine = [ep for ep in endpoints if ep.get("hostname") == host
                or host in (a.replace(".", "-") for a in ep.get("addresses") or [])]
        if not mine:
            lines.append(f"no endpoint of Service {ns}/{svc_name} is called {host!r}")
            lines.extend(await _explain_pod_by_hostname(client, ns, host, svc_name))
            return lines
        endpoints = mine
        ready = [ep for ep in mine if endpoint_ready(ep)]
    if not slices:
        if spec.get("selector"):
            lines.append(f"Service {ns}/{svc_name} has no EndpointSlices yet "
                         f"(selector {spec['selector']} matches no pods?)")
        else:
            lines.append(f"Service {ns}/{svc_name} has no selector and no EndpointSlices: "
                         "write one labelled kubernetes.io/service-name")
    elif not ready:
        lines.append(f"Service {ns}/{svc_name} has no ready endpoints ({len(endpoints)} not ready)")
    else:
        lines.append(f"Service {ns}/{svc_name} has {len(ready)} ready endpoint(s); the record type asked "
                     "may not exist (A vs AAAA, SRV needs a named port)")
    for ep in endpoints:
        if ep in ready:
            continue
        ref = ep.get("targetRef") or {}
        what = ", ".join(ep.get("addresses") or [])
        if ref.get("kind") == "Pod":
            lines.append(f"  {what}: {await _pod_state(client, ns, ref.get('name', ''))}")
        else:
            lines.append(f"  {what}: endpoint not ready")
    return lines


async def _pod_state(client: Any, ns: str, name: str) -> str:
    try:
        pod = await client.get(resources.PODS, name, ns)
    except errors.NotFound:
        return f"pod {name} does not exist"
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return f"pod {name} is terminating"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") != "True":
            reason = cond.get("reason") or cond.get("message") or "readiness probe failing"
            return f"pod {name} not ready ({status.get('phase', '?')}): {reason}"
    return f"pod {name} is {status.get('phase', 'Pending')}"


async def _explain_pod_by_hostname(client: Any, ns: str, host: str, subdomain: str) -> list[str]:
    pods = (await client.list(resources.PODS, ns)).get("items") or []
    for pod in pods:
        spec = pod.get("spec") or {}
        if spec.get("hostname") == host and spec.get("subdomain") == subdomain:
            return [f"  {await _pod_state(client, ns, pod['metadata']['name'])}"]
    sets = (await client.list(resources.STATEFULSETS, ns)).get("items") or []
    for sts in sets:
        prefix = sts["metadata"]["name"] + "-"
        if (sts.get("spec") or {}).get("serviceName") == subdomain and host.startswith(prefix):
            ordinal = host[len(prefix):]
            replicas = (sts.get("spec") or {}).get("replicas", 1)
            if ordinal.isdigit() and int(ordinal) >= replicas:
                return [f"  StatefulSet {ns}/{sts['metadata']['name']} has {replicas} replicas: "
                        f"ordinal {ordinal} is not wanted"]
            return [f"  StatefulSet {ns}/{sts['metadata']['name']}: pod {host} not created yet"]
    return [f"  no pod has hostname {host!r} and subdomain {subdomain!r}"]


async def _explain_pod(client: Any, labels: list[str]) -> list[str]:
    dashed, ns = labels
    try:
        await client.get(resources.NAMESPACES, ns)
    except errors.NotFound:
        return [f"namespace {ns!r} does not exist"]
    ip = pod_ip(dashed) or dashed
    pods = (await client.list(resources.PODS, ns)).get("items") or []
    owners = [p["metadata"]["name"] for p in pods if ip in _pod_ips(p)]
    if not owners:
        return [f"no pod in namespace {ns!r} has IP {ip} (pod records need an IP as a-b-c-d, or an "
                "IPv6 address with '-' for ':')"]
    return [f"pod {owners[0]} has IP {ip}; the DNS server may run with --pods disabled"]


def _pod_ips(pod: dict[str, Any]) -> set[str]:
    """The pod's addresses (every family), in canonical text."""
    status = pod.get("status") or {}
    raw = [p.get("ip") for p in status.get("podIPs") or [] if isinstance(p, dict)] + [status.get("podIP")]
    out = set()
    for value in raw:
        with contextlib.suppress(ValueError):
            out.add(str(ipaddress.ip_address(str(value))))
    return out


def format_answer(msg: dns.message.Message) -> list[str]:
    """The answer and additional sections as 'name ttl TYPE data' lines."""
    out = []
    for section, rrsets in (("", msg.answer), ("additional: ", msg.additional)):
        for rrset in rrsets:
            for rd in rrset:
                out.append(f"{section}{rrset.name}  {rrset.ttl}  {dns.rdatatype.to_text(rrset.rdtype)}  "
                           f"{rd.to_text()}")
    return out


__all__ = ["Result", "dns", "explain", "format_answer", "lookup", "search_names"]
