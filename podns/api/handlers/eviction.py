"""The pods/eviction subresource: a pod deletion that respects PodDisruptionBudgets
(kube-apiserver `registry/core/pod/storage/eviction.go`).

`evict(rest, pods, budgets, namespace, name, body)` takes a policy/v1 `Eviction` and:

- deletes at once a pod that causes no further disruption (Pending, Succeeded, Failed, or
  already being deleted), or that no budget selects;
- refuses with 500 a pod selected by more than one budget (Kubernetes' message);
- deletes a not-Ready pod without using the budget when the budget says so
  (`unhealthyPodEvictionPolicy: AlwaysAllow`, or the default IfHealthyBudget while the budget
  is met);
- otherwise consumes one of the budget's `disruptionsAllowed`, records the pod in
  `status.disruptedPods` (compare-and-swap on the budget: a concurrent eviction retries), then
  deletes the pod with the Eviction's `deleteOptions`. With none allowed it answers 429
  TooManyRequests "Cannot evict pod as it would violate the pod's disruption budget.", with a
  `DisruptionBudget` cause naming what the budget needs, which `kubectl drain` retries.

The answer is a `Status` Success with code 201, as Kubernetes'.
"""

from __future__ import annotations

from typing import Any

from podns.api import statuserror
from podns.api.handlers.rest import DeleteOptions, Rest, WriteOptions
from podns.api.resources.base import Obj, ResourceType
from podns.objects import apistatus, now_rfc3339, pod_is_ready
from podns.objects.apistatus import Status, StatusCause
from podns.objects.selectors import SelectorError, selector_from_label_selector

EVICTION_REFUSED = "Cannot evict pod as it would violate the pod's disruption budget."
#: Kubernetes' `MaxDisruptedPodSize`: a budget tracking more pending evictions refuses new ones
MAX_DISRUPTED_PODS = 2000


def _selects(pdb: Obj, labels: Any) -> bool:
    selector = (pdb.get("spec") or {}).get("selector")
    if selector is None:
        return False
    try:
        sel = selector_from_label_selector(selector)
    except SelectorError:
        return False
    return not sel.empty() and sel.matches(labels or {})


def _too_many(pdb: Obj, message: str) -> statuserror.ApiError:
    cause: StatusCause = {"reason": "DisruptionBudget", "message": message}
    return statuserror.ApiError(429, "TooManyRequests", EVICTION_REFUSED,
                                {"causes": [cause], "retryAfterSeconds": 0})


def _delete_options(body: Any) -> DeleteOptions:
    raw = (body or {}).get("deleteOptions") or {} if isinstance(body, dict) else {}
    pre = raw.get("preconditions") or {}
    grace = raw.get("gracePeriodSeconds")
    return DeleteOptions(grace_period_seconds=grace if isinstance(grace, int) else None,
                         propagation_policy=raw.get("propagationPolicy"), uid=pre.get("uid"),
                         resource_version=pre.get("resourceVersion"), dry_run=bool(raw.get("dryRun")))


def _success() -> Status:
    return apistatus.success(code=201)


async def evict(rest: Rest, pods: ResourceType, budgets: ResourceType | None, namespace: str, name: str,
                body: Any) -> Status:
    """Evict pod `namespace/name`; returns the Success Status or raises an `ApiError`."""
    if isinstance(body, dict) and body.get("kind") not in (None, "", "Eviction"):
        raise statuserror.bad_request(f"the kind in the data ({body.get('kind')}) does not match the "
                                      "expected kind (Eviction)")
    opts = _delete_options(body)
    pod = await rest.get(pods, namespace, name)
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if phase in ("Pending", "Succeeded", "Failed") or (pod.get("metadata") or {}).get("deletionTimestamp"):
        await rest.delete(pods, namespace, name, opts)
        return _success()
    labels = (pod.get("metadata") or {}).get("labels")
    matching = []
    if budgets is not None:
        listed = await rest.list(budgets, namespace)
        matching = [pdb for pdb in listed.get("items") or [] if _selects(pdb, labels)]
    if len(matching) > 1:
        raise statuserror.internal("This pod has more than one PodDisruptionBudget, which the eviction "
                                   "subresource does not support.")
    if budgets is None or not matching:  # (no budgets are served: none can match)
        await rest.delete(pods, namespace, name, opts)
        return _success()
    pdb = matching[0]
    status = pdb.get("status") or {}
    policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") or "IfHealthyBudget"
    healthy_budget = int(status.get("currentHealthy") or 0) >= int(status.get("desiredHealthy") or 0) > 0
    if not pod_is_ready(pod) and (policy == "AlwaysAllow" or healthy_budget):
        await rest.delete(pods, namespace, name, opts)
        return _success()
    pdb_name = (pdb.get("metadata") or {}).get("name", "")

    def consume(current: Obj) -> Obj:
        st = current.setdefault("status", {})
        md = current.setdefault("metadata", {})
        md.pop("resourceVersion", None)  # a concurrent eviction: re-read and decide again
        if int(st.get("observedGeneration") or 0) < int(md.get("generation") or 0):
            raise _too_many(current, f"The disruption budget {pdb_name} is still being processed by the "
                                     "server.")
        allowed = int(st.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise statuserror.ApiError(403, "Forbidden", "pdb disruptions allowed is negative")
        disrupted = dict(st.get("disruptedPods") or {})
        if len(disrupted) > MAX_DISRUPTED_PODS:
            raise statuserror.ApiError(403, "Forbidden", "DisruptedPods map too big - too many evictions "
                                       "not confirmed by PDB controller")
        if allowed == 0:
            raise _too_many(current, f"The disruption budget {pdb_name} needs "
                                     f"{int(st.get('desiredHealthy') or 0)} healthy pods and has "
                                     f"{int(st.get('currentHealthy') or 0)} currently")
        st["disruptionsAllowed"] = allowed - 1
        disrupted[name] = now_rfc3339()
        st["disruptedPods"] = disrupted
        return current

    if not opts.dry_run:
        await rest.update(budgets, namespace, pdb_name, consume, WriteOptions(), subresource="status")
    else:
        consume(dict(pdb))
    await rest.delete(pods, namespace, name, opts)
    return _success()
