"""`planned_prompts`: per image step, the image prompts its planner wrote, each with its model, config and the URL
its image will have; made while every step runs, before any image is rendered."""

import dagster as dg

from imageflow_dagster.assets.common import job_asset, md_cell, usage_metadata
from imageflow_dagster.models.pipeline import AIGeneration, JobPlan, StepPlan

PLANNED_PROMPTS = job_asset(
    "planned_prompts",
    deps=[],
    description="Per image step: the planner's prompts, each with its model, config and future S3 URL.",
    kinds={"openai"},
    stage="planning",
)


def planned_prompts_materialization(plan: JobPlan) -> dg.MaterializeResult | None:
    """None when an image step failed: the asset stays failed for this job."""
    if any(s.kind == "image" and s.status == "failed" for s in plan.steps):
        return None
    return dg.MaterializeResult(asset_key=PLANNED_PROMPTS.key, metadata=_plan_metadata(plan))


def _plan_metadata(plan: JobPlan) -> dict:
    image_steps = [s for s in plan.steps if s.kind == "image"]
    ai_parts = [s.ai for s in plan.steps if s.ai]
    rows = ["| step | label | prompt | model |", "|---|---|---|---|"]
    for step in image_steps:
        for request in step.image_requests:
            cells = [f"{step.number} {md_cell(step.name, 40)}", md_cell(request.label, 40), md_cell(request.prompt)]
            rows.append(f"| {' | '.join(cells)} | {request.model} |")
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
            [{"step": s.number, **swap} for s in plan.steps if s.ai for swap in s.ai.replacements]
        ),
        "rate_limit_wait_s": round(sum(ai.rate_limit_wait_s for ai in ai_parts), 3),
        "rate_limited_429s": sum(ai.rate_limited for ai in ai_parts),
        **usage_metadata(plan.step_usages),
    }


def _step_summary(step: StepPlan) -> dict:
    ai = step.ai or AIGeneration(model="")  # webhook and handoff steps call no model
    summary = {
        "step": step.number,
        "name": step.name,
        "kind": step.kind,
        "model": ai.model,
        "requested_model": ai.requested_model,
        "status": step.status,
        "duration_ms": step.duration_ms,
        "replayed": ai.replayed,
    }
    if step.kind == "image":
        image = step.image
        summary.update(image_model=image.model, requested_image_model=image.requested_model)
        summary.update(path=image.path, fallback=image.planner_fallback)
        summary["images"] = [
            {"label": request.label, "key": request.key, "prompt": request.prompt} for request in image.requests
        ]
    if step.error:
        summary["error"] = step.error
    return summary
