"""`generated_images`: the images phase of `process_job`, every planned image rendered concurrently (per-job limit
`IMAGEFLOW_IMAGE_CONCURRENCY`) once every step has run.

An image already stored under its request-derived key is reused without a call; a moderation block or a failed
image is recorded and judged by the job's rules, so images that did succeed keep their rows.
"""

import statistics

import dagster as dg

from imageflow_dagster.assets.common import job_asset, md_cell, usage_metadata
from imageflow_dagster.flow.generation import GenerationTools, generate_images
from imageflow_dagster.flow.job_store import put_usage
from imageflow_dagster.flow.records import IMAGES_SERVICE, image_usage, images_of, step_outcome, unique_replacements
from imageflow_dagster.flow.records import usage_record
from imageflow_dagster.models.pipeline import GeneratedImage, JobPlan, StepPlan
from imageflow_dagster.resources.dynamodb import DynamoDBResource

# Bounds the jobs rendering images at once across all runs: `dagster instance concurrency set openai_images N`.
IMAGES_POOL = "openai_images"

GENERATED_IMAGES = job_asset(
    "generated_images",
    deps=["planned_prompts"],
    description="Every planned image of the job, rendered concurrently and stored in S3 as it arrives.",
    kinds={"openai", "s3"},
    stage="images",
)


def images_phase(plan: JobPlan, tools: GenerationTools, db: DynamoDBResource, run_id: str) -> list[GeneratedImage]:
    images = generate_images(plan, tools)
    for step in plan.steps:
        usage = image_usage(step, images_of(step, images))
        if usage:
            put_usage(db, usage_record(plan.job, run_id, step, IMAGES_SERVICE, usage))
        _say_if_failed(step, images, tools)
    return images


def _say_if_failed(step: StepPlan, images: list[GeneratedImage], tools: GenerationTools) -> None:
    """An image step that planned fine but whose images fail it under the job's rules shows `error` live, as a
    step that failed while running does (steps/runner.py)."""
    if step.status != "ok" or step.kind != "image":
        return
    outcome = step_outcome(step, images_of(step, images))
    if not outcome.success:
        tools.progress.failed(step.number, outcome.error or "step failed")


def images_materialization(plan: JobPlan, images: list[GeneratedImage]) -> dg.MaterializeResult | None:
    """None when an image fails its step under the job's rules: the asset is then failed for this job."""
    planned = [s for s in plan.steps if s.status == "ok" and s.kind == "image"]
    if any(not step_outcome(s, images_of(s, images)).success for s in planned):
        return None
    return dg.MaterializeResult(asset_key=GENERATED_IMAGES.key, metadata=_metadata(images))


def _metadata(images: list[GeneratedImage]) -> dict:
    counts = {o: sum(1 for g in images if g.outcome == o) for o in ("generated", "reused", "blocked", "failed")}
    latencies = [g.latency_s for g in images if g.outcome == "generated"]
    rows = [
        "| step | image | outcome | model | bytes | latency s | rate-limit wait s | 429s | cost USD | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for g in images:
        cost = g.usage.cost_usd if g.usage else 0
        note = md_cell(g.error or (f"converted from {g.converted_from}" if g.converted_from else ""), 120)
        rows.append(
            f"| {g.request.step_index + 1} | {md_cell(g.request.label, 40)} | {g.outcome} | {g.model or g.request.model} "
            f"| {g.size_bytes} | {g.latency_s} | {g.rate_limit_wait_s} | {g.rate_limited} | {cost:.4f} | {note} |"
        )
    replacements = unique_replacements([swap for g in images for swap in g.replacements])
    return {
        "images": len(images),
        **{f"images_{outcome}": n for outcome, n in counts.items()},
        "bytes": sum(g.size_bytes for g in images),
        "latency_max_s": max(latencies, default=0.0),
        "latency_median_s": statistics.median(latencies) if latencies else 0.0,
        "moderation_blocked": dg.MetadataValue.json(
            [{"label": g.request.label, "key": g.request.key, "prompt": g.request.prompt, "reason": g.error} for g in images if g.outcome == "blocked"]
        ),
        "outcomes": dg.MetadataValue.md("\n".join(rows)),
        "rate_limit_wait_s": round(sum(g.rate_limit_wait_s for g in images), 3),
        "rate_limited_429s": sum(g.rate_limited for g in images),
        "model_replacements": dg.MetadataValue.json(replacements),
        **usage_metadata([g.usage for g in images if g.usage], images=counts["generated"]),
    }
