"""`planned_prompts` and `step_reports`: the planning phase of `process_job` (text steps and image planners in
dependency order, independent steps in parallel)."""

from collections.abc import Iterator

import dagster as dg

from imageflow_dagster.assets.common import job_asset, md_cell, usage_metadata
from imageflow_dagster.flow.job_store import put_usage
from imageflow_dagster.flow.loading import JobInputs
from imageflow_dagster.flow.planning import PlanningTools
from imageflow_dagster.flow.records import PLANNER_SERVICE, TEXT_SERVICE, usage_record
from imageflow_dagster.models.pipeline import JobPlan, StepPlan
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.steps.runner import plan_job

PLANNED_PROMPTS = job_asset(
    "planned_prompts",
    deps=[],
    description="Per image step: the planner's prompts, each with its model, config and future S3 URL.",
    kinds={"openai"},
    stage="planning",
)
STEP_REPORTS = job_asset(
    "step_reports", deps=[], description="Outputs of the workflow's text steps.", kinds={"openai"}, stage="planning"
)


def plan_phase(inputs: JobInputs, tools: PlanningTools, db: DynamoDBResource, run_id: str) -> JobPlan:
    plan = plan_job(inputs, tools)
    for step in plan.steps:
        if step.usage and step.usage.calls:
            service = TEXT_SERVICE if step.kind == "text" else PLANNER_SERVICE
            put_usage(db, usage_record(plan.job, run_id, step, service, step.usage))
    return plan


def planning_materializations(plan: JobPlan) -> Iterator[dg.MaterializeResult]:
    """Each asset is materialized only when its part of the planning succeeded: a failed planner leaves
    `planned_prompts` failed for this job, a failed text step `step_reports`."""
    failed_kinds = {s.kind for s in plan.steps if s.status == "failed"}
    if "image" not in failed_kinds:
        yield dg.MaterializeResult(asset_key=PLANNED_PROMPTS.key, metadata=_plan_metadata(plan))
    if "text" not in failed_kinds:
        reports = [s for s in plan.steps if s.kind == "text"]
        yield dg.MaterializeResult(asset_key=STEP_REPORTS.key, metadata=_reports_metadata(reports))


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
        summary["images"] = [{"label": r.label, "key": r.key, "prompt": r.prompt} for r in step.requests]
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
