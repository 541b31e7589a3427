"""Service IP families: `spec.ipFamilies`, `spec.ipFamilyPolicy` and `spec.clusterIPs`.

Kubernetes' dual-stack Service rules, in the three places kube-apiserver has them:

- `validate_cluster_ips`: the stand-alone checks on every write (`pkg/apis/core/validation`
  `ValidateServiceClusterIPsRelatedFields`): `clusterIPs[0]` equals `clusterIP`, at most two
  IPs of different families, `None` only alone, families `IPv4`/`IPv6` without duplicates, a
  known policy, each IP of its `ipFamilies[i]` family; ExternalName Services carry none of them.
- `validate_upgrade_downgrade`: what an update may change (`validateUpgradeDowngradeClusterIPs`
  and `...IPFamilies`): the primary IP and family never change; dropping the secondary needs
  `ipFamilyPolicy: SingleStack`; headless Services may change families.
- `init_families`: defaulting against the cluster's service CIDRs, before allocation
  (`pkg/registry/core/service/storage/alloc.go` `initIPFamilyFields`): a policy left out is the
  old one on update, `RequireDualStack` for a headless Service without selector, else
  `SingleStack`; families follow the requested IPs, then the cluster's primary family, then
  the second family for `PreferDualStack`/`RequireDualStack` when the cluster has two;
  `RequireDualStack` on a single-stack cluster, or a family the cluster has no range for, is
  422 on `spec.ipFamilyPolicy` / `spec.ipFamilies[i]`. Headless Services without selector may
  name both families on a single-stack cluster (nothing is allocated for them).

Pure functions over the Service `spec` dict; `init_families` mutates it and returns the errors.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources._validation import (
    BAD_IP_MESSAGE,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from podns.api.resources.base import FieldError, Obj
from podns.objects.cidrs import IP_FAMILIES, IPV4, IPV6, ip_family, other_family

SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
POLICIES = [PREFER, REQUIRE, SINGLE]  # sorted, as Kubernetes lists supported values


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def is_headless(spec: Obj) -> bool:
    """Kubernetes `isHeadlessService`: `clusterIPs` is exactly ["None"]."""
    return _list(spec.get("clusterIPs")) == ["None"]


def validate_external_name(spec: Obj) -> list[FieldError]:
    """ExternalName Services have no cluster IPs, families or policy (`ValidateService`)."""
    errs: list[FieldError] = []
    if spec.get("clusterIPs"):
        errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if spec.get("ipFamilies"):
        errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    return errs


def validate_cluster_ips(spec: Obj) -> list[FieldError]:
    """Kubernetes `ValidateServiceClusterIPsRelatedFields` (not for ExternalName Services)."""
    errs: list[FieldError] = []
    ip = spec.get("clusterIP") or ""
    raw_ips = spec.get("clusterIPs")
    if raw_ips is not None and not isinstance(raw_ips, list):
        return [invalid("spec.clusterIPs", raw_ips, "must be a list")]
    ips = _list(raw_ips)
    if ip:
        if not ips:
            errs.append(required("spec.clusterIPs"))
        elif ips[0] != ip:
            errs.append(invalid("spec.clusterIPs", ips, "first value must match `clusterIP`"))
    elif ips:
        errs.append(invalid("spec.clusterIPs", ips, "must be empty when `clusterIP` is not specified"))
    raw_families = spec.get("ipFamilies")
    if raw_families is not None and not isinstance(raw_families, list):
        return [*errs, invalid("spec.ipFamilies", raw_families, "must be a list")]
    families = _list(raw_families)
    seen: set[Any] = set()
    for i, family in enumerate(families):
        if family not in IP_FAMILIES:
            errs.append(not_supported(f"spec.ipFamilies[{i}]", family, list(IP_FAMILIES)))
        if isinstance(family, str) and family in seen:
            errs.append(duplicate(f"spec.ipFamilies[{i}]", family))
        if isinstance(family, str):
            seen.add(family)
    policy = spec.get("ipFamilyPolicy")
    if policy is not None and policy not in POLICIES:
        errs.append(not_supported("spec.ipFamilyPolicy", policy, POLICIES))
    bad_ips = False
    for i, value in enumerate(ips):
        if i == 0 and value == "None":
            if len(ips) > 1:
                bad_ips = True
                errs.append(invalid("spec.clusterIPs", ips, "'None' must be the first and only value"))
            continue
        if ip_family(value) is None or not isinstance(value, str):
            bad_ips = True
            errs.append(invalid(f"spec.clusterIPs[{i}]", value, BAD_IP_MESSAGE))
    if len(ips) > 2:
        errs.append(invalid("spec.clusterIPs", ips, "may only hold up to 2 values"))
    if bad_ips:
        return errs  # further checks would only repeat the bad addresses
    if len(ips) > 1 and len({ip_family(v) for v in ips}) != len(ips):
        errs.append(invalid("spec.clusterIPs", ips, "may specify no more than one IP for each IP family"))
    if not is_headless(spec):
        for i, (value, family) in enumerate(zip(ips, families, strict=False)):
            if family in IP_FAMILIES and ip_family(value) != family:
                errs.append(invalid(f"spec.clusterIPs[{i}]", value,
                                    f"expected an {family} value as indicated by `ipFamilies[{i}]`"))
    return errs


def validate_upgrade_downgrade(spec: Obj, old: Obj) -> list[FieldError]:
    """What an update may change of `clusterIPs` and `ipFamilies` (Kubernetes
    `validateUpgradeDowngradeClusterIPs` and `validateUpgradeDowngradeIPFamilies`)."""
    if "ExternalName" in (spec.get("type"), old.get("type")):
        return []
    errs: list[FieldError] = []
    ips, old_ips = _list(spec.get("clusterIPs")), _list(old.get("clusterIPs"))
    policy = spec.get("ipFamilyPolicy")
    if not (is_headless(spec) and is_headless(old)):
        if len(old_ips) == len(ips):
            errs += [invalid(f"spec.clusterIPs[{i}]", ips, "may not change once set")
                     for i, value in enumerate(old_ips) if value != ips[i]]
        elif len(old_ips) > len(ips):
            if not ips:
                errs.append(invalid("spec.clusterIPs[0]", ips, "primary clusterIP can not be unset"))
            elif old_ips[0] != ips[0]:
                errs.append(invalid("spec.clusterIPs[0]", ips, "may not change once set"))
            if len(ips) == 1 and policy != SINGLE:
                errs.append(invalid("spec.ipFamilyPolicy", policy,
                                    "must be set to 'SingleStack' when releasing the secondary clusterIP"))
        elif old_ips and ips[0] != old_ips[0]:
            errs.append(invalid("spec.clusterIPs[0]", ips, "may not change once set"))
    if is_headless(spec) or is_headless(old):
        return errs  # headless Services may change families, and so may a change to/from headless
    fams, old_fams = _list(spec.get("ipFamilies")), _list(old.get("ipFamilies"))
    if len(old_fams) == len(fams):
        if old_fams != fams:
            errs.append(invalid("spec.ipFamilies[0]", fams, "may not change once set"))
    elif len(old_fams) > len(fams):
        if not ips:
            errs.append(invalid("spec.ipFamilies[0]", fams, "primary ipFamily can not be unset"))
        if fams and fams[0] != old_fams[0]:
            errs.append(invalid("spec.ipFamilies[0]", ips, "may not change once set"))
        if len(fams) == 1 and policy != SINGLE:
            errs.append(invalid("spec.ipFamilyPolicy", policy,
                                "must be set to 'SingleStack' when releasing the secondary ipFamily"))
    elif old_fams and fams and fams[0] != old_fams[0]:
        errs.append(invalid("spec.ipFamilies[0]", ips, "may not change once set"))
    return errs


def _matching_prefer_dual_stack(spec: Obj, old: Obj | None) -> bool:
    """An update of a PreferDualStack Service that keeps its IPs and families: left as it is,
    so a cluster turned dual-stack (or back) never adds or removes an IP on its own."""
    if old is None or spec.get("ipFamilyPolicy") is None:
        return False
    if spec.get("type") != old.get("type") or spec.get("type") not in ("ClusterIP", "NodePort",
                                                                        "LoadBalancer"):
        return False
    if spec.get("ipFamilyPolicy") != PREFER or old.get("ipFamilyPolicy") not in (PREFER, None):
        return False
    return (_list(spec.get("clusterIPs")) == _list(old.get("clusterIPs"))
            and _list(spec.get("ipFamilies")) == _list(old.get("ipFamilies")))


def init_families(spec: Obj, old: Obj | None, cluster: list[str]) -> list[FieldError]:
    """Default `ipFamilyPolicy` and `ipFamilies` of a (non-ExternalName) Service against the
    cluster's families `cluster` (primary first); errors when the request cannot be met. `old`
    is the stored spec on update (None on create, or when it was ExternalName)."""
    if _matching_prefer_dual_stack(spec, old):
        return []
    headless_selectorless = spec.get("clusterIP") == "None" and not spec.get("selector")
    if spec.get("ipFamilyPolicy") is None:
        if old is not None and old.get("ipFamilyPolicy") is not None:
            spec["ipFamilyPolicy"] = old["ipFamilyPolicy"]
        elif headless_selectorless:
            spec["ipFamilyPolicy"] = REQUIRE
        else:
            spec["ipFamilyPolicy"] = SINGLE
    policy = spec["ipFamilyPolicy"]
    errs = validate_cluster_ips(spec)
    if errs:
        return errs
    ips = _list(spec.get("clusterIPs"))
    families = _list(spec.get("ipFamilies"))
    if old is not None:
        old_ips, old_fams = _list(old.get("clusterIPs")), _list(old.get("ipFamilies"))
        if policy == SINGLE:
            # Same IPs and families as before plus SingleStack: the intent is to drop the
            # secondary (the primary is immutable, so keeping it is safe).
            if ips == old_ips and len(ips) > 1:
                ips = spec["clusterIPs"] = ips[:1]
            if families == old_fams and len(families) > 1:
                families = spec["ipFamilies"] = families[:1]
        else:
            if ips and len(ips) < len(old_ips):
                errs.append(invalid("spec.ipFamilyPolicy", policy,
                                    "must be 'SingleStack' to release the secondary cluster IP"))
            if families and len(families) < len(old_fams):
                errs.append(invalid("spec.ipFamilyPolicy", policy,
                                    "must be 'SingleStack' to release the secondary IP family"))
    if policy == SINGLE:
        if len(ips) == 2:
            errs.append(invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                "'PreferDualStack' when multiple cluster IPs are specified"))
        if len(families) == 2:
            errs.append(invalid("spec.ipFamilyPolicy", policy, "must be 'RequireDualStack' or "
                                "'PreferDualStack' when multiple IP families are specified"))
    for i, value in enumerate(ips):
        if value == "None":
            break
        family = ip_family(value)
        if i >= len(families) and family is not None:
            if family not in cluster:
                errs.append(invalid(f"spec.clusterIPs[{i}]", ips,
                                    f"{family} is not configured on this cluster"))
            else:
                families.append(family)
    if errs:
        return errs
    if headless_selectorless:
        if not families:
            families.append(cluster[0])
        if len(families) < 2 and policy != SINGLE:
            families.append(other_family(families[0]))
        spec["ipFamilies"] = families
        return []
    if policy == REQUIRE and len(cluster) < 2:
        errs.append(invalid("spec.ipFamilyPolicy", policy,
                            "this cluster is not configured for dual-stack services"))
    errs += [invalid(f"spec.ipFamilies[{i}]", family, "not configured on this cluster")
             for i, family in enumerate(families) if family not in cluster]
    if errs:
        return errs
    if not families:
        families.append(cluster[0])
    if policy != SINGLE and len(families) == 1 and len(cluster) == 2:
        families.append(IPV6 if families[0] == IPV4 else IPV4)
    spec["ipFamilies"] = families
    return []
