"""Jobs (batch/v1): the generated selector, defaults, validation with Kubernetes' messages,
immutable fields, printing.

On create, as Kubernetes' job strategy does (`generateSelector`), the template gets the labels
`batch.kubernetes.io/controller-uid` / `controller-uid` (the Job's uid) and
`batch.kubernetes.io/job-name` / `job-name`, and the selector matches the uid label; a Job
without labels takes its template's. Defaults (`SetDefaults_Job`): completions and parallelism 1
when both are unset, else parallelism 1; backoffLimit 6; completionMode NonIndexed; suspend false;
podReplacementPolicy TerminatingOrFailed. The template's restartPolicy must be OnFailure or Never
(Required when left to default to Always). selector, template, completions and completionMode
are immutable. Status starts `{}`.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE, human_duration, seconds_since
from podns.api.resources._validation import (
    dig,
    immutable,
    invalid,
    not_supported,
    required,
    validate_label_selector,
)
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import Column, FieldError, Obj
from podns.objects import parse_time
from podns.objects.selectors import SelectorError, selector_from_label_selector

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
RESTART_POLICIES = ["OnFailure", "Never"]
COMPLETION_MODES = ["NonIndexed", "Indexed"]
SELECTOR_DESCRIPTION = (
    "A label query over pods that should match the pod count. Normally, the system sets this field "
    "for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/"
    "#label-selectors")


def generate_selector(job: Obj) -> None:
    """Kubernetes' `generateSelector`: identity labels on the template, a uid selector."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or spec.get("manualSelector") is True:
        return
    md = job.get("metadata") or {}
    template = spec.setdefault("template", {})
    if not isinstance(template, dict):
        return
    tmeta = template.setdefault("metadata", {})
    if not isinstance(tmeta, dict):
        return
    labels = tmeta.get("labels")
    if not isinstance(labels, dict):
        labels = tmeta["labels"] = {}
    for key in (LEGACY_JOB_NAME, JOB_NAME):
        labels.setdefault(key, str(md.get("name", "")))
    for key in (LEGACY_CONTROLLER_UID, CONTROLLER_UID):
        labels.setdefault(key, str(md.get("uid", "")))
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        selector = spec["selector"] = {}
    match = selector.get("matchLabels")
    if not isinstance(match, dict):
        match = selector["matchLabels"] = {}
    match.setdefault(CONTROLLER_UID, str(md.get("uid", "")))


def default_job_spec(spec: Any) -> None:
    """`SetDefaults_Job` on a JobSpec (also a CronJob's jobTemplate.spec)."""
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    w.default_template(spec.get("template"))


def validate_job_spec(path: str, spec: Any, *, selector_required: bool = True) -> list[FieldError]:
    """`validateJobSpec`: counts, completion mode, the template (restartPolicy OnFailure/Never)
    and, when `selector_required`, a selector matching the template's labels."""
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    for field in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                  "ttlSecondsAfterFinished"):
        errs.extend(non_negative(f"{path}.{field}", spec.get(field)))
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in COMPLETION_MODES:
        errs.append(not_supported(f"{path}.completionMode", mode, COMPLETION_MODES))
    elif mode == "Indexed":
        errs.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed"]))
    selector = spec.get("selector")
    if selector_required:
        if selector is None:
            errs.append(required(f"{path}.selector"))
        else:
            errs.extend(validate_label_selector(f"{path}.selector", selector))
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, required(f"{path}.template")]
    labels = dig(template, "metadata", "labels", default={})
    if isinstance(selector, dict) and not errs:
        try:
            matches = selector_from_label_selector(selector).matches(labels)
        except SelectorError:
            matches = True
        if not matches:
            errs.append(invalid(f"{path}.template.metadata.labels", labels,
                                "`selector` does not match template `labels`"))
    errs.extend(w.validate_template(f"{path}.template", template, None,
                                    restart_policies=("Always", *RESTART_POLICIES), deadline_kind=None))
    restart = dig(template, "spec", "restartPolicy", default="Always")
    if restart in ("", "Always"):
        errs.append(required(f"{path}.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    elif restart not in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", restart, RESTART_POLICIES))
    return errs


class JobStrategy(KindStrategy):
    schema_type = "batch.v1.Job"
    subresources = ("status",)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        generate_selector(obj)

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_job_spec(spec)
        md = obj.get("metadata")
        labels = dig(spec, "template", "metadata", "labels")
        if isinstance(md, dict) and labels and not md.get("labels"):
            md["labels"] = dict(labels)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs = validate_job_spec("spec", obj.get("spec"))
        spec = obj.get("spec") or {}
        if isinstance(spec, dict) and spec.get("manualSelector") is not True:
            md = obj.get("metadata") or {}
            want = {CONTROLLER_UID: str(md.get("uid", ""))}
            labels = dig(spec, "template", "metadata", "labels", default={})
            for key, value in ((LEGACY_CONTROLLER_UID, md.get("uid")), (LEGACY_JOB_NAME, md.get("name"))):
                if labels.get(key) != value:
                    errs.append(invalid(f"spec.template.metadata.labels[{key}]", labels.get(key),
                                        f"must be '{value}'"))
            if md.get("uid") and (spec.get("selector") or {}) != {"matchLabels": want}:
                errs.append(invalid("spec.selector", spec.get("selector"), "`selector` not auto-generated"))
        return errs

    def validate_spec_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for field in ("selector", "template", "completions", "completionMode"):
            errs.extend(immutable(f"spec.{field}", dig(new, "spec", field), dig(old, "spec", field)))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Status", description="Status of the job."),
            Column("Completions", description="The number of pods which reached phase Succeeded. The "
                   "value increases monotonically for a given spec. However, it may decrease in reaction "
                   "to scale down of elastic indexed jobs."),
            Column("Duration", description="Time required to complete the job."),
            AGE,
            w.CONTAINERS,
            w.IMAGES,
            w.selector_column(SELECTOR_DESCRIPTION),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        return [job_status(obj), completions_cell(obj), duration_cell(obj),
                *w.containers_cells(obj, "spec", "template"), w.selector_cell(dig(obj, "spec", "selector"))]


def _has(obj: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in dig(obj, "status", "conditions", default=[]))


def job_status(obj: Obj) -> str:
    """The STATUS cell (`printJob`)."""
    if _has(obj, "Complete"):
        return "Complete"
    if _has(obj, "Failed"):
        return "Failed"
    if dig(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    for ctype in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has(obj, ctype):
            return ctype
    return "Running"


def completions_cell(obj: Obj) -> str:
    succeeded = int(dig(obj, "status", "succeeded", default=0))
    completions = dig(obj, "spec", "completions")
    parallelism = dig(obj, "spec", "parallelism")
    if completions is not None:
        return f"{succeeded}/{completions}"
    if parallelism is not None and int(parallelism) > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def duration_cell(obj: Obj) -> str:
    start = dig(obj, "status", "startTime")
    if not start:
        return ""
    done = dig(obj, "status", "completionTime")
    if not done:
        elapsed = seconds_since(start)
        return human_duration(elapsed) if elapsed is not None else ""
    begin, end = parse_time(start), parse_time(done)
    return human_duration(end - begin) if begin is not None and end is not None else ""
