"""Handoff steps (`handoff_workflow_id`): start a job of another workflow of the same tenant with the payload the
seed builds, recorded as the seed's `workflow_handoff` execution step.

The target job is started by writing its submission and job rows in the seed's format with status `processing`,
so imageflow's own sensor picks it up. Its ids derive from the source job and step, and both rows are
create-only: a rerun of the source job finds the job it started before instead of starting a second one. A
rerun that asks this step again (`rerun_steps`) starts a new one, as the seed's step rerun does.

Each job a handoff starts carries `handoff_depth`, its source's depth + 1 (a job from the seed's API has
none: 0). Workflows that hand off to each other (A -> B -> A) would otherwise start jobs without end; a
handoff whose job would be deeper than IMAGEFLOW_MAX_HANDOFF_DEPTH fails its step and writes nothing.
"""

import time

from pydantic import ValidationError

from imageflow_dagster.flow.errors import step_failure_message
from imageflow_dagster.flow.new_job_rows import put_job_row, put_submission_row
from imageflow_dagster.ids import stable_id
from imageflow_dagster.models import ExecutionStep
from imageflow_dagster.models.job import Job
from imageflow_dagster.models.pipeline import StepPlan
from imageflow_dagster.models.workflow import WorkflowStep
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.steps.base import StepRun, blocked_by, invalid_settings, not_run
from imageflow_dagster.steps.handoff_payload import HandoffConfig, handoff_config, submission_data

NAME = "workflow_handoff"
MARKER = "handoff_workflow_id"
SUBMISSION_TTL_S = 90 * 24 * 3600  # the seed's webhook submissions expire after 90 days
# What the seed's webhook endpoint puts under the incoming data.
SUBMISSION_DEFAULTS = {"name": "Webhook Submission", "email": "webhook@example.com", "phone": ""}
DEPTH_FIELD = "handoff_depth"  # an extra attribute of the job rows handoffs write; the seed ignores it


class HandoffRefused(ValueError):
    """The target workflow cannot receive the job; nothing was written."""


class HandoffTooDeep(HandoffRefused):
    """The job would be deeper in a chain of handoffs than IMAGEFLOW_MAX_HANDOFF_DEPTH allows; no write."""


def check(step: WorkflowStep, where: str) -> None:
    try:
        handoff_config(step.model_extra or {})
    except ValidationError as exc:
        raise invalid_settings(step, where, "handoff", exc) from exc


def run(step_run: StepRun) -> StepPlan:
    started = time.monotonic()
    config = handoff_config(step_run.step.model_extra or {})
    plan = step_run.new_plan("handoff")
    blocked = blocked_by(step_run.deps, step_run.done)
    if blocked:
        not_run(plan, blocked)
        plan.entry = _entry(plan, config, {}, None)
        return plan
    payload = submission_data(step_run, config)
    try:
        target_name = _checked_target(step_run, config)
        depth = target_depth(step_run.inputs.job, step_run.tools.max_handoff_depth)
        step_run.tools.progress.say(plan.number, f"Starting workflow {target_name}...", "generating")
        job_id = start_target_job(step_run, config, payload, depth)
        plan.output_text = f'Triggered lead magnet "{target_name}" (job_id={job_id})'
    except HandoffRefused as exc:
        job_id = None
        plan.status, plan.error, plan.error_type = "failed", str(exc), type(exc).__name__
    step_run.tools.log.info(
        f"handoff job={step_run.job.job_id} step={plan.number} ({plan.name}) -> workflow {config.handoff_workflow_id}: "
        f"{plan.output_text or plan.error}"
    )
    plan.duration_ms = int((time.monotonic() - started) * 1000)
    plan.entry = _entry(plan, config, payload, job_id)
    return plan


def start_target_job(step_run: StepRun, config: HandoffConfig, payload: dict, depth: int) -> str:
    """Writes the target's submission and job rows (create-only), the job at `depth`; returns its id."""
    db = _db(step_run)
    source = step_run.job
    variant = step_run.tools.variant if step_run.index in step_run.tools.fresh_steps else ""
    job_id = stable_id("job", source.job_id, step_run.index, variant)
    submission_id = stable_id("sub", source.job_id, step_run.index, variant)
    target = db.get_item(db.workflows_table, {"workflow_id": config.handoff_workflow_id}) or {}
    answers = {**SUBMISSION_DEFAULTS, **payload}
    submitter = {
        "submitter_email": answers.get("email"),
        "submitter_phone": answers.get("phone"),
        "submitter_name": answers.get("name"),
        "ttl": int(time.time()) + SUBMISSION_TTL_S,
    }
    tenant = source.tenant_id
    form_id = target.get("form_id")
    target_id = config.handoff_workflow_id
    put_submission_row(db, submission_id, tenant, target_id, answers, job_id, form_id=form_id, extra=submitter)
    if not put_job_row(db, job_id, tenant, target_id, submission_id, extra={DEPTH_FIELD: depth}):
        step_run.tools.log.info(f"handoff target job {job_id} exists already (a rerun of this step); not started again")
    return job_id


def target_depth(source: Job, limit: int) -> int:
    """The depth of the job a handoff from `source` starts, once it is within `limit`."""
    depth = handoff_depth(source) + 1
    if depth > limit:
        raise HandoffTooDeep(
            f"handoff depth {depth} would exceed the limit of {limit} (IMAGEFLOW_MAX_HANDOFF_DEPTH): "
            f"job {source.job_id} was itself started by {depth - 1} handoff(s) in a row; no job started"
        )
    return depth


def handoff_depth(job: Job) -> int:
    """How many handoffs in a row led to `job`; a value that is no count is refused rather than read as 0,
    which would restart the count of a cycle."""
    value = (job.model_extra or {}).get(DEPTH_FIELD)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HandoffRefused(f"job {job.job_id} has an invalid {DEPTH_FIELD} {value!r}; no job started")
    return value


def _checked_target(step_run: StepRun, config: HandoffConfig) -> str:
    """The target workflow's name, once it is known to be another live workflow of the same tenant."""
    target_id = config.handoff_workflow_id
    if target_id == step_run.job.workflow_id:
        raise HandoffRefused(f"cannot hand off to the same workflow ({target_id})")
    db = _db(step_run)
    target = db.get_item(db.workflows_table, {"workflow_id": target_id})
    if target is None or target.get("deleted_at"):
        raise HandoffRefused(f"target workflow {target_id} not found")
    if target.get("tenant_id") != step_run.job.tenant_id:
        raise HandoffRefused(f"target workflow {target_id} is not in the same tenant")
    return str(target.get("workflow_name") or target_id)


def _db(step_run: StepRun) -> DynamoDBResource:
    if step_run.tools.db is None:
        raise HandoffRefused("no DynamoDB resource to start the target job with")
    return step_run.tools.db


def _entry(plan: StepPlan, config: HandoffConfig, payload: dict, job_id: str | None) -> dict:
    """The seed's `workflow_handoff` step, without its webhook URL (which carries the tenant's token)."""
    success = plan.status == "ok"
    record = ExecutionStep(
        step_name=plan.name,
        step_order=plan.number,
        step_type=NAME,
        success=success,
        input={"payload": {"workflow_id": config.handoff_workflow_id, "submission_data": payload}},
        output={"triggered_job_id": job_id, "success": success, "error": None if success else plan.error},
        timestamp=plan.started_at,
        duration_ms=plan.duration_ms,
    )
    record.depends_on = [d + 1 for d in plan.depends_on]
    if not success:
        record.error = step_failure_message(plan.number, plan.name, plan.error or plan.status)
        record.error_type = plan.error_type
    return record.model_dump(mode="json")
