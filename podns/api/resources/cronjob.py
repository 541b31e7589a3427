"""CronJobs (batch/v1): defaults, validation with Kubernetes' messages, printing.

Defaults (`SetDefaults_CronJob`): concurrencyPolicy Allow, suspend false,
successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1, the job template's PodSpec defaults.
Validation (`ValidateCronJobCreate`): a name of at most 52 characters (Jobs get an 11-character
suffix), a schedule robfig/cron parses (no `TZ=` / `CRON_TZ=` in it: `timeZone` says that), a
known `timeZone`, concurrencyPolicy Allow/Forbid/Replace, non-negative deadlines and limits, a job
template whose pods restart OnFailure or Never and whose selector is left to be generated.
"""

from __future__ import annotations

from typing import Any

from podns.api.resources import _workload as w
from podns.api.resources._kind import KindStrategy
from podns.api.resources._printing import AGE, since
from podns.api.resources._validation import dig, invalid, not_supported, required
from podns.api.resources._validation import validate_non_negative as non_negative
from podns.api.resources.base import Column, FieldError, Obj
from podns.api.resources.job import SELECTOR_DESCRIPTION, validate_job_spec
from podns.objects import cron

POLICIES = ["Allow", "Forbid", "Replace"]
#: Kubernetes' limit: a Job name is the CronJob's plus `-<11 digits>`, within 63 characters
MAX_NAME = 52


class CronJobStrategy(KindStrategy):
    schema_type = "batch.v1.CronJob"
    subresources = ("status",)

    def set_defaults(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        template = spec.get("jobTemplate")
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            w.default_template(template["spec"].get("template"))
            md = template.setdefault("metadata", {})
            if isinstance(md, dict):
                md.setdefault("creationTimestamp", None)

    def validate_spec(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        name = str(dig(obj, "metadata", "name", default=""))
        if len(name) > MAX_NAME:
            errs.append(invalid("metadata.name", name, f"must be no more than {MAX_NAME} characters"))
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [*errs, required("spec")]
        schedule = spec.get("schedule")
        if not schedule:
            errs.append(required("spec.schedule"))
        elif str(schedule).lstrip().startswith(("TZ=", "CRON_TZ=")):
            errs.append(invalid("spec.schedule", schedule,
                                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
        else:
            try:
                cron.parse(str(schedule))
            except cron.CronError as exc:
                errs.append(invalid("spec.schedule", schedule, str(exc)))
        tz = spec.get("timeZone")
        if tz == "":
            errs.append(invalid("spec.timeZone", tz, "timeZone must be nil or non-empty string"))
        elif tz is not None:
            try:
                cron.zone(str(tz))
            except cron.CronError:
                errs.append(invalid("spec.timeZone", tz, f"unknown time zone {tz}"))
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy not in POLICIES:
            errs.append(not_supported("spec.concurrencyPolicy", policy, POLICIES))
        for field in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            errs.extend(non_negative(f"spec.{field}", spec.get(field)))
        job_spec = dig(spec, "jobTemplate", "spec")
        if isinstance(job_spec, dict) and job_spec.get("selector") is not None:
            errs.append(invalid("spec.jobTemplate.spec.selector", job_spec["selector"],
                                "`selector` will be auto-generated"))
        errs.extend(validate_job_spec("spec.jobTemplate.spec", job_spec, selector_required=False))
        return errs

    def columns(self) -> list[Column]:
        return [
            Column("Schedule", description="The schedule in Cron format, see "
                   "https://en.wikipedia.org/wiki/Cron."),
            Column("Timezone", description="The time zone name for the given schedule, see "
                   "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
            Column("Suspend", type="boolean", description="This flag tells the controller to suspend "
                   "subsequent executions, it does not apply to already started executions.  Defaults "
                   "to false."),
            Column("Active", type="integer", description="A list of pointers to currently running jobs."),
            Column("Last Schedule", description="Information when was the last time the job was "
                   "successfully scheduled."),
            AGE,
            w.CONTAINERS,
            w.IMAGES,
            w.selector_column(SELECTOR_DESCRIPTION),
        ]

    def cells(self, obj: Obj) -> list[Any]:
        suspend = dig(obj, "spec", "suspend")
        last = dig(obj, "status", "lastScheduleTime")
        return [
            str(dig(obj, "spec", "schedule", default="")),
            dig(obj, "spec", "timeZone") or "<none>",
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(dig(obj, "status", "active", default=[])),
            since(last) if last else "<none>",
            *w.containers_cells(obj, "spec", "jobTemplate", "spec", "template"),
            w.selector_cell(dig(obj, "spec", "jobTemplate", "spec", "selector")),
        ]
