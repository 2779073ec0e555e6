"""`execution_steps`: `execution_steps.json` (its only writer; the final put of the run) and the job's final status,
with the final document's `output_url` and `final_output` entry when the job delivered one."""

import json
from dataclasses import dataclass

import dagster as dg

from imageflow_dagster.assets.common import job_asset, job_check, usage_metadata
from imageflow_dagster.flow.deliverable import FINAL_TYPES, final_output_entry, ordered_artifact_ids
from imageflow_dagster.flow.job_store import Finish, mark_completed, mark_failed
from imageflow_dagster.flow.records import EXECUTION_STEPS_FILE, images_of, step_outcome
from imageflow_dagster.flow.records import execution_steps as build_execution_steps
from imageflow_dagster.models import Artifact
from imageflow_dagster.models.pipeline import GeneratedImage, JobPlan, StoredObject
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource

RECORDED_CHECK = "every_workflow_step_recorded"

EXECUTION_STEPS = job_asset(
    "execution_steps",
    deps=["artifacts"],
    description="execution_steps.json (form submission + one entry per workflow step, seed shape) and the job's "
    "final status, completed or failed.",
    kinds={"s3", "dynamodb"},
    stage="records",
)
RECORDED_CHECK_SPEC = job_check(
    RECORDED_CHECK,
    asset=EXECUTION_STEPS,
    description="execution_steps.json holds the form submission and one entry per workflow step.",
)


@dataclass(frozen=True)
class JobOutcome:
    key: str
    s3_url: str
    records: list[dict]
    failure: tuple[str, str] | None  # (error_message, error_type) of the first failed step
    handed_on: bool = False  # a hand-off arrived during the run: the job stays `processing` for the next run


def finish_job(
    s3: ImageflowS3Resource,
    db: DynamoDBResource,
    plan: JobPlan,
    generated: list[GeneratedImage],
    objects: list[StoredObject],
    rows: list[Artifact],
    claim_id: str,
) -> JobOutcome:
    """Writes execution_steps.json, then the job's status, fenced on the run's claim and its hand-off."""
    artifact_ids = {row.s3_key: row.artifact_id for row in rows}
    output_keys = {o.step_index: o.key for o in objects if o.kind == "step_output"}
    records = build_execution_steps(plan, generated, artifact_ids, output_keys)
    final = next((o for o in objects if o.kind in FINAL_TYPES), None)
    if final:
        records.append(final_output_entry(len(records), final, artifact_ids[final.key]))
    key = f"{plan.job.prefix}/{EXECUTION_STEPS_FILE}"
    s3.put(key, json.dumps(records, indent=2, default=str).encode(), "application/json")
    failure = _first_failure(plan, generated)
    finished = {"execution_steps_s3_key": key, "artifacts": ordered_artifact_ids(plan, objects, artifact_ids)}
    if final:
        finished["output_url"] = final.url
    if failure:
        written = mark_failed(db, plan.job.job_id, failure[0], failure[1], finished, claim_id=claim_id)
    else:
        written = mark_completed(db, plan.job.job_id, finished, claim_id=claim_id)
    if not written:
        raise dg.Failure(description=f"Job {plan.job.job_id} was taken over by another run; outcome not written")
    handed_on = written is Finish.HANDED_ON
    return JobOutcome(key=key, s3_url=s3.s3_url(key), records=records, failure=failure, handed_on=handed_on)


def execution_steps_events(
    plan: JobPlan, generated: list[GeneratedImage], outcome: JobOutcome, job_cost_usd: float
) -> dg.MaterializeResult | dg.AssetCheckResult:
    """A completed job materializes `execution_steps`; a failed one leaves it failed for this job (its
    execution_steps.json is written all the same) and reports only the check."""
    check = _recorded_check(plan, outcome.records)
    if outcome.failure:
        return check
    metadata = {**_metadata(plan, generated, outcome), "openai.job_cost_usd": round(job_cost_usd, 6)}
    return dg.MaterializeResult(asset_key=EXECUTION_STEPS.key, metadata=metadata, check_results=[check])


def _first_failure(plan: JobPlan, generated: list[GeneratedImage]) -> tuple[str, str] | None:
    for step in plan.steps:  # execution order: the first step that failed explains the job
        outcome = step_outcome(step, images_of(step, generated))
        if not outcome.success:
            return outcome.error or "step failed", outcome.error_type or "StepFailed"
    return None


def _recorded_check(plan: JobPlan, records: list[dict]) -> dg.AssetCheckResult:
    workflow_steps = [record for record in records if record["step_type"] not in ("form_submission", "final_output")]
    recorded = {record["step_order"] for record in workflow_steps}
    expected = {s.number for s in plan.steps}
    has_form = any(record["step_type"] == "form_submission" for record in records)
    return dg.AssetCheckResult(
        asset_key=EXECUTION_STEPS.key,
        check_name=RECORDED_CHECK,
        passed=has_form and recorded == expected,
        metadata={"expected_steps": len(expected), "recorded_steps": len(recorded), "form_submission": has_form},
    )


def _metadata(plan: JobPlan, generated: list[GeneratedImage], outcome: JobOutcome) -> dict:
    usages = plan.step_usages + [g.usage for g in generated if g.usage]
    return {
        "execution_steps": dg.MetadataValue.url(outcome.s3_url),
        "step_count": len(outcome.records),
        "job_status": _job_status(outcome),
        "error_message": outcome.failure[0] if outcome.failure else "",
        **usage_metadata(usages, images=sum(1 for g in generated if g.outcome == "generated")),
    }


def _job_status(outcome: JobOutcome) -> str:
    if outcome.handed_on:
        return "processing"  # left for the run of the hand-off that arrived meanwhile
    return "failed" if outcome.failure else "completed"
