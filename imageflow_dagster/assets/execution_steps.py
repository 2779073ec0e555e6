import json

import dagster as dg

from imageflow_dagster.assets.common import GROUP, claim_id_of, failing_job_on_error, usage_metadata
from imageflow_dagster.flow.job_store import mark_completed, mark_failed
from imageflow_dagster.flow.records import EXECUTION_STEPS_FILE, images_of, step_outcome
from imageflow_dagster.flow.records import execution_steps as build_execution_steps
from imageflow_dagster.models.pipeline import GeneratedImage, JobArtifacts, JobPlan
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource

RECORDED_CHECK = "every_workflow_step_recorded"


@dg.asset(
    partitions_def=jobs_partitions,
    group_name=GROUP,
    kinds={"s3", "dynamodb"},
    check_specs=[
        dg.AssetCheckSpec(
            RECORDED_CHECK,
            asset="execution_steps",
            description="execution_steps.json holds the form submission and one entry per workflow step.",
        )
    ],
)
def execution_steps(
    context: dg.AssetExecutionContext,
    planned_prompts: JobPlan,
    generated_images: list[GeneratedImage],
    artifacts: JobArtifacts,
    s3: ImageflowS3Resource,
    dynamodb: DynamoDBResource,
):
    """Writes `execution_steps.json` (the only writer, one put per run) and ends the job `completed` or
    `failed`. A failed step fails the job and then this run, after everything made so far is recorded."""
    plan = planned_prompts
    with failing_job_on_error(context, dynamodb):
        records = build_execution_steps(plan, generated_images, artifacts.artifact_ids, artifacts.output_keys)
        key = f"{plan.job.prefix}/{EXECUTION_STEPS_FILE}"
        s3.put(key, json.dumps(records, indent=2).encode(), "application/json")
        failure = _first_failure(plan, generated_images)
        finished = {"execution_steps_s3_key": key, "artifacts": list(artifacts.artifact_ids.values())}
        claim = claim_id_of(context)
        if failure:
            written = mark_failed(dynamodb, plan.job.job_id, failure[0], failure[1], finished, claim_id=claim)
        else:
            written = mark_completed(dynamodb, plan.job.job_id, finished, claim_id=claim)
        if not written:
            raise dg.Failure(description=f"Job {plan.job.job_id} was taken over by another run; outcome not written")
    yield dg.Output(records, metadata=_metadata(plan, generated_images, records, key, failure))
    yield _recorded_check(plan, records)
    if failure:
        raise dg.Failure(description=failure[0], metadata={"error_type": failure[1]})


def _first_failure(plan: JobPlan, generated: list[GeneratedImage]) -> tuple[str, str] | None:
    for step in plan.steps:  # execution order: the first step that failed explains the job
        outcome = step_outcome(step, images_of(step, generated))
        if not outcome.success:
            return outcome.error or "step failed", outcome.error_type or "StepFailed"
    return None


def _recorded_check(plan: JobPlan, records: list[dict]) -> dg.AssetCheckResult:
    recorded = {r["step_order"] for r in records if r["step_type"] == "ai_generation"}
    expected = {s.number for s in plan.steps}
    has_form = any(r["step_type"] == "form_submission" for r in records)
    return dg.AssetCheckResult(
        check_name=RECORDED_CHECK,
        passed=has_form and recorded == expected,
        metadata={"expected_steps": len(expected), "recorded_steps": len(recorded), "form_submission": has_form},
    )


def _metadata(plan: JobPlan, generated: list[GeneratedImage], records: list[dict], key: str, failure) -> dict:
    usages = [s.usage for s in plan.steps if s.usage] + [g.usage for g in generated if g.usage]
    return {
        "execution_steps_s3_key": key,
        "step_count": len(records),
        "job_status": "failed" if failure else "completed",
        "error_message": failure[0] if failure else "",
        **usage_metadata(usages, images=sum(1 for g in generated if g.outcome == "generated")),
    }
