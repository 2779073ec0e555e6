"""What `process_job` settles before any model call: the run's config, the job's records, its claim and tags."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from imageflow_dagster.assets.common import claim_id_of
from imageflow_dagster.flow.claim_heartbeat import ClaimHeartbeat
from imageflow_dagster.flow.errors import JobNotFound
from imageflow_dagster.flow.job_store import start_run
from imageflow_dagster.flow.loading import load_job_inputs
from imageflow_dagster.flow.ordering import with_dependents
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.prompt_overrides import load_planner_override
from imageflow_dagster.flow.response_cache import ResponseCache
from imageflow_dagster.models import PromptOverride
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.run_tags import CLAIM_TAG, job_tags
from imageflow_dagster.steps.base import StepTools
from imageflow_dagster.steps.kinds import check_steps
from imageflow_dagster.steps.webhook_http import WebhookPolicy


class JobRunConfig(dg.Config):
    replay_answers: bool = True
    """Reuse planner and text answers stored by an earlier run of this job (reruns then repeat exactly and
    reuse stored images). Set to false to ask the model again for every step."""
    rerun_steps: list[int] = []
    """Step numbers (1-based) to ask the model again, with the steps that depend on them; their images are
    rendered anew. The other steps replay their stored answers."""
    rerun_dependents: bool = True
    """With rerun_steps: also ask again for the steps that depend on them (the seed's "Rerun Step & Continue").
    False asks again only for the named steps and replays their dependents (the seed's "Rerun Step Only")."""


@contextmanager
def claimed_job(
    context: dg.AssetExecutionContext, config: JobRunConfig, db: DynamoDBResource, s3: ImageflowS3Resource
) -> Iterator[JobInputs]:
    """The job's records, with the job's claim held for this run until the block ends (its lease renewed)."""
    inputs = claimed_inputs(context, config, db, s3)
    with ClaimHeartbeat(db, inputs.job.job_id, claim_id_of(context), context.log):
        yield inputs


def claimed_inputs(
    context: dg.AssetExecutionContext, config: JobRunConfig, db: DynamoDBResource, s3: ImageflowS3Resource
) -> JobInputs:
    """The job's records, once this run holds the job's claim. A partition key that is no job, or a run config
    that names no step, stops the run before it touches the job."""
    try:
        inputs = load_job_inputs(db, context.partition_key)
    except JobNotFound:
        raise dg.Failure(
            description=f"Partition {context.partition_key!r} is not a job in table {db.jobs_table}: nothing was run. "
            "Partitions are added by the sensor; pick an existing job rather than adding a partition by hand."
        ) from None
    check_steps(inputs)
    _fresh_steps(config, inputs)
    s3.check_bucket()
    _tag_run(context, inputs)
    claim = claim_id_of(context)
    if not start_run(db, inputs.job.job_id, claim, db.claim_lease_s, from_sensor=claim != context.run.run_id):
        raise dg.Failure(description=f"Job {inputs.job.job_id} is being processed by another run; not started")
    return inputs


def step_tools(
    context: dg.AssetExecutionContext,
    config: JobRunConfig,
    inputs: JobInputs,
    openai: OpenAIResource,
    s3: ImageflowS3Resource,
    db: DynamoDBResource,
    settings: SettingsResource,
) -> StepTools:
    return StepTools(
        openai=openai,
        s3=s3,
        cache=ResponseCache(s3, f"{inputs.job.tenant_id}/jobs/{inputs.job.job_id}", enabled=config.replay_answers),
        progress=LiveProgress(db, inputs.job.job_id, context.log),
        log=context.log,
        fresh_steps=frozenset(_fresh_steps(config, inputs)),
        variant=context.run.run_id[:8],
        webhooks=WebhookPolicy.from_settings(settings),
        max_handoff_depth=settings.max_handoff_depth,
        db=db,
        planner_override=_planner_override(inputs, db, context.log),
    )


def _planner_override(inputs: JobInputs, db: DynamoDBResource, log) -> PromptOverride | None:
    # Read per run like the job's records, and only by jobs that plan images (the override's only use).
    if not any(step.image_tool() for step in inputs.workflow.steps):
        return None
    return load_planner_override(db, inputs.job.tenant_id, log)


def _fresh_steps(config: JobRunConfig, inputs: JobInputs) -> set[int]:
    numbers, count = config.rerun_steps, len(inputs.workflow.steps)
    unknown = [n for n in numbers if not 1 <= n <= count]
    if unknown:
        job_id = inputs.job.job_id
        raise dg.Failure(description=f"rerun_steps {unknown} name no step of job {job_id}: its steps are 1 to {count}")
    named = {n - 1 for n in numbers}
    return with_dependents(inputs.dependencies, named) if config.rerun_dependents else named


def _tag_run(context: dg.AssetExecutionContext, inputs: JobInputs) -> None:
    """Runs started from the UI get the tags the sensor gives its runs, and a claim named by their run id."""
    job = inputs.job
    wanted = job_tags(job.job_id, job.tenant_id, job.workflow_id, inputs.workflow.workflow_name)
    if CLAIM_TAG not in context.run.tags:
        wanted[CLAIM_TAG] = context.run.run_id
    missing = {key: value for key, value in wanted.items() if context.run.tags.get(key) != value}
    if missing:
        context.instance.add_run_tags(context.run.run_id, missing)
