import statistics

import dagster as dg

from imageflow_dagster.assets.common import GROUP, failing_job_on_error, md_cell, usage_metadata
from imageflow_dagster.flow.generation import GenerationTools, generate_images
from imageflow_dagster.flow.job_store import put_usage
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.records import IMAGES_SERVICE, image_usage, images_of, unique_replacements, usage_record
from imageflow_dagster.models.pipeline import GeneratedImage, JobPlan
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource

# Bounds Images API calls across all runs; set its limit with `dagster instance concurrency set openai_images N`.
IMAGES_POOL = "openai_images"


@dg.asset(partitions_def=jobs_partitions, group_name=GROUP, pool=IMAGES_POOL, kinds={"openai", "s3"})
def generated_images(
    context: dg.AssetExecutionContext,
    planned_prompts: JobPlan,
    openai: OpenAIResource,
    s3: ImageflowS3Resource,
    dynamodb: DynamoDBResource,
) -> dg.Output[list[GeneratedImage]]:
    """Every planned image of the job, rendered concurrently (per-job limit `IMAGEFLOW_IMAGE_CONCURRENCY`).

    An image already stored under its request-derived key is reused without a call; a moderation block or a
    failed image is recorded here and judged by `execution_steps`, so images that did succeed keep their rows.
    """
    with failing_job_on_error(context, dynamodb):
        tools = GenerationTools(
            openai=openai, s3=s3, progress=LiveProgress(dynamodb, planned_prompts.job.job_id, context.log), log=context.log
        )
        images = generate_images(planned_prompts, tools)
        _record_usage(context, dynamodb, planned_prompts, images)
    return dg.Output(images, metadata=_metadata(images))


def _record_usage(context: dg.AssetExecutionContext, db: DynamoDBResource, plan: JobPlan, images: list[GeneratedImage]):
    for step in plan.steps:
        usage = image_usage(step, images_of(step, images))
        if usage:
            put_usage(db, usage_record(plan.job, context.run.run_id, step, IMAGES_SERVICE, usage))


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
    replacements = unique_replacements([r for g in images for r in g.replacements])
    return {
        "images": len(images),
        **{f"images_{outcome}": n for outcome, n in counts.items()},
        "bytes": sum(g.size_bytes for g in images),
        "latency_max_s": max(latencies, default=0.0),
        "latency_median_s": statistics.median(latencies) if latencies else 0.0,
        "moderation_blocked": dg.MetadataValue.json(
            [{"label": g.request.label, "prompt": g.request.prompt[:300], "reason": g.error} for g in images if g.outcome == "blocked"]
        ),
        "outcomes": dg.MetadataValue.md("\n".join(rows)),
        "rate_limit_wait_s": round(sum(g.rate_limit_wait_s for g in images), 3),
        "rate_limited_429s": sum(g.rate_limited for g in images),
        "model_replacements": dg.MetadataValue.json(replacements),
        **usage_metadata([g.usage for g in images if g.usage], images=counts["generated"]),
    }
