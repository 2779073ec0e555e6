import dagster as dg

from imageflow_dagster.assets.common import GROUP, claim_id_of, failing_job_on_error, md_cell, usage_metadata
from imageflow_dagster.flow.job_store import CLAIM_TAG, put_usage, start_run
from imageflow_dagster.flow.loading import load_job_inputs
from imageflow_dagster.flow.planning import PlanningTools, plan_job
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.records import PLANNER_SERVICE, TEXT_SERVICE, usage_record
from imageflow_dagster.flow.response_cache import ResponseCache
from imageflow_dagster.models.pipeline import JobPlan, StepPlan
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource


class PlanningConfig(dg.Config):
    replay_answers: bool = True
    """Reuse planner and text answers stored by an earlier run of this job (reruns then repeat exactly and
    reuse stored images). Set to false to ask the model again."""


@dg.multi_asset(
    outs={
        "planned_prompts": dg.AssetOut(
            description="Per image step: the planner's prompts, each with its model, config and future S3 URL.",
            kinds={"openai"},
        ),
        "step_reports": dg.AssetOut(description="Outputs of the workflow's text steps.", kinds={"openai"}),
    },
    partitions_def=jobs_partitions,
    group_name=GROUP,
)
def plan_steps(
    context: dg.AssetExecutionContext,
    config: PlanningConfig,
    openai: OpenAIResource,
    s3: ImageflowS3Resource,
    dynamodb: DynamoDBResource,
):
    """Loads the job's records, runs text steps and image planners in dependency order (independent steps in
    parallel) and derives every image's key and URL from its request."""
    with failing_job_on_error(context, dynamodb):
        inputs = load_job_inputs(dynamodb, context.partition_key)
        s3.check_bucket()
        _tag_claim(context)
        if not start_run(dynamodb, inputs.job.job_id, claim_id_of(context), dynamodb.claim_lease_s):
            raise dg.Failure(description=f"Job {inputs.job.job_id} is being processed by another run; not started")
        prefix = f"{inputs.job.tenant_id}/jobs/{inputs.job.job_id}"
        tools = PlanningTools(
            openai=openai,
            s3=s3,
            cache=ResponseCache(s3, prefix, enabled=config.replay_answers),
            progress=LiveProgress(dynamodb, inputs.job.job_id, context.log),
            log=context.log,
        )
        plan = plan_job(inputs, tools)
        _record_usage(context, dynamodb, plan)
    yield dg.Output(plan, output_name="planned_prompts", metadata=_plan_metadata(plan))
    reports = [s for s in plan.steps if s.kind == "text"]
    yield dg.Output(reports, output_name="step_reports", metadata=_reports_metadata(reports))


def _tag_claim(context: dg.AssetExecutionContext) -> None:
    """A run launched from the UI claims the job with its run id; the tag lets the sensor see that run."""
    if CLAIM_TAG not in context.run.tags:
        context.instance.add_run_tags(context.run.run_id, {CLAIM_TAG: context.run.run_id})


def _record_usage(context: dg.AssetExecutionContext, db: DynamoDBResource, plan: JobPlan) -> None:
    for step in plan.steps:
        if step.usage and step.usage.calls:
            service = TEXT_SERVICE if step.kind == "text" else PLANNER_SERVICE
            put_usage(db, usage_record(plan.job, context.run.run_id, step, service, step.usage))


def _plan_metadata(plan: JobPlan) -> dict:
    image_steps = [s for s in plan.steps if s.kind == "image"]
    rows = ["| step | label | prompt | model |", "|---|---|---|---|"]
    for step in image_steps:
        for r in step.requests:
            rows.append(f"| {step.number} {md_cell(step.name, 40)} | {md_cell(r.label, 40)} | {md_cell(r.prompt)} | {r.model} |")
    return {
        "job_id": plan.job.job_id,
        "tenant_id": plan.job.tenant_id,
        "steps": len(plan.steps),
        "image_steps": len(image_steps),
        "planned_images": len(plan.image_requests),
        "failed_steps": dg.MetadataValue.json([_step_summary(s) for s in plan.steps if s.status != "ok"]),
        "plan": dg.MetadataValue.md("\n".join(rows)),
        "steps_detail": dg.MetadataValue.json([_step_summary(s) for s in plan.steps]),
        "model_replacements": dg.MetadataValue.json(
            [{"step": s.number, **r} for s in plan.steps for r in s.replacements]
        ),
        "rate_limit_wait_s": round(sum(s.rate_limit_wait_s for s in plan.steps), 3),
        "rate_limited_429s": sum(s.rate_limited for s in plan.steps),
        **usage_metadata([s.usage for s in plan.steps if s.usage]),
    }


def _step_summary(step: StepPlan) -> dict:
    summary = {
        "step": step.number,
        "name": step.name,
        "kind": step.kind,
        "model": step.model,
        "requested_model": step.requested_model,
        "status": step.status,
        "duration_ms": step.duration_ms,
        "replayed": step.replayed,
    }
    if step.kind == "image":
        summary.update(image_model=step.image_model, requested_image_model=step.requested_image_model)
        summary.update(path=step.image_path, fallback=step.planner_fallback)
        summary["images"] = [{"label": r.label, "prompt": r.prompt[:300]} for r in step.requests]
    if step.error:
        summary["error"] = step.error
    return summary


def _reports_metadata(reports: list[StepPlan]) -> dict:
    preview = "\n\n".join(f"### Step {s.number}: {s.name}\n\n{(s.output_text or s.error or '')[:1500]}" for s in reports)
    return {
        "text_steps": len(reports),
        "characters": sum(len(s.output_text or "") for s in reports),
        "preview": dg.MetadataValue.md(preview or "_no text steps_"),
    }
