"""What every asset of the job needs: the failure guard and metadata helpers."""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from imageflow_dagster.flow.errors import JobError
from imageflow_dagster.flow.job_store import mark_failed
from imageflow_dagster.models.pipeline import CallUsage
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource, TableError
from imageflow_dagster.resources.openai_client import OpenAINotConfigured
from imageflow_dagster.resources.s3 import StorageError
from imageflow_dagster.run_tags import CLAIM_TAG

GROUP = "imageflow"
OWNER = "team:imageflow"


def job_asset(key: str, *, deps: list[str], description: str, kinds: set[str], stage: str) -> dg.AssetSpec:
    """An asset of `process_job`: in imageflow's group, one partition per job; `stage` lets the catalog filter
    by what the asset stands for (planning, images, records)."""
    return dg.AssetSpec(
        key,
        deps=deps,
        description=description,
        kinds=kinds,
        group_name=GROUP,
        partitions_def=jobs_partitions,
        owners=[OWNER],
        tags={"imageflow/stage": stage},
    )


def job_check(name: str, *, asset: dg.AssetSpec, description: str) -> dg.AssetCheckSpec:
    """A check evaluated per job: its result belongs to the job's partition, not to the asset as a whole.

    Partitioned checks are a preview feature in Dagster 1.13 (pinned exactly, and covered by tests that read the
    per-job results back), so its warning is silenced here rather than in every process that loads the code.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset.key, description=description, partitions_def=jobs_partitions)


def claim_id_of(context: dg.AssetExecutionContext) -> str:
    """The sensor's claim for sensor-launched runs; a run started from the UI claims with its run id."""
    return context.run.tags.get(CLAIM_TAG) or context.run.run_id


@contextmanager
def failing_job_on_error(context: dg.AssetExecutionContext, db: DynamoDBResource) -> Iterator[None]:
    """Any error that escapes an asset ends the job `failed` with a readable message, then fails the run.

    `dg.Failure` is raised only after the job row was already written, so it passes through untouched.
    """
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        message, error_type = describe_failure(exc)
        context.log.error(f"job {context.partition_key} failed: {message}")
        try:
            mark_failed(db, context.partition_key, message, error_type, claim_id=claim_id_of(context))
        except Exception as write_error:  # the job row itself may be unreachable; the run still fails
            context.log.error(f"could not mark job {context.partition_key} failed: {write_error}")
        raise


def describe_failure(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, JobError):
        return str(exc), exc.error_type
    if isinstance(exc, StorageError):
        return f"Storage error: {exc}", "StorageError"
    if isinstance(exc, TableError):
        return f"Database error: {exc}", "TableError"
    if isinstance(exc, OpenAINotConfigured):
        return str(exc), "OpenAINotConfigured"
    return f"Fatal error during job processing: {type(exc).__name__}: {exc}", type(exc).__name__


def usage_metadata(usages: list[CallUsage], images: int | None = None) -> dict[str, float | int]:
    """Totals per model in dagster-openai's `openai.<model>.*` naming, plus the overall cost."""
    per_model: dict[str, CallUsage] = {}
    for usage in usages:
        per_model[usage.model] = per_model.get(usage.model, CallUsage(model=usage.model)).plus(usage)
    metadata: dict[str, float | int] = {}
    for model, total in sorted(per_model.items()):
        metadata[f"openai.{model}.calls"] = total.calls
        metadata[f"openai.{model}.input_tokens"] = total.input_tokens
        metadata[f"openai.{model}.output_tokens"] = total.output_tokens
        metadata[f"openai.{model}.cost_usd"] = round(total.cost_usd, 6)
    metadata["openai.cost_usd"] = round(sum(u.cost_usd for u in usages), 6)
    if images is not None:
        metadata["openai.images"] = images
    return metadata


def md_cell(text: str | None, limit: int = 160) -> str:
    """Text safe for one markdown table cell."""
    flat = " ".join((text or "").split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
