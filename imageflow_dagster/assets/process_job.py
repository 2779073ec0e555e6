"""`process_job`: the one op that turns a job into its six assets, phase by phase: every step run (text answers,
image prompts planned, webhooks sent, handoff jobs started), then the images rendered, then the job recorded.

One op, not one per asset: an asset page's Materialize (or a run's Re-execute) always re-plans, renders what is
missing and records, under the job's claim, instead of running one stage on stale inputs; nothing is pickled
between stages (BENCHMARKS.md, case 0). Each asset is materialized only when its stage succeeded for the job, so
a failed job's partition shows Failed where it failed, while what it did make stays recorded.
"""

import dagster as dg

from imageflow_dagster.assets.artifacts import ARTIFACTS, artifacts_materialization, write_artifacts
from imageflow_dagster.assets.common import claim_id_of, failing_job_on_error, usage_metadata
from imageflow_dagster.assets.execution_steps import EXECUTION_STEPS, RECORDED_CHECK_SPEC, execution_steps_events
from imageflow_dagster.assets.execution_steps import JobOutcome, finish_job
from imageflow_dagster.assets.generated_images import GENERATED_IMAGES, IMAGES_POOL, images_materialization
from imageflow_dagster.assets.generated_images import images_phase
from imageflow_dagster.assets.planned_prompts import PLANNED_PROMPTS, planned_prompts_materialization
from imageflow_dagster.assets.run_setup import JobRunConfig, claimed_job, step_tools
from imageflow_dagster.assets.s3_objects import S3_OBJECTS, STORED_CHECK_SPEC, objects_materialization, store_objects
from imageflow_dagster.assets.step_reports import STEP_REPORTS, step_reports_materialization
from imageflow_dagster.flow.generation import GenerationTools
from imageflow_dagster.flow.job_store import job_cost_usd, put_usage
from imageflow_dagster.flow.live_artifacts import LiveArtifacts
from imageflow_dagster.flow.notifications import notify_completed
from imageflow_dagster.flow.records import PLANNER_SERVICE, TEXT_SERVICE, usage_record
from imageflow_dagster.models.job_inputs import JobInputs
from imageflow_dagster.models.pipeline import JobPlan
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.steps.base import StepTools
from imageflow_dagster.steps.runner import run_steps


@dg.multi_asset(
    name="process_job",
    specs=[PLANNED_PROMPTS, STEP_REPORTS, GENERATED_IMAGES, S3_OBJECTS, ARTIFACTS, EXECUTION_STEPS],
    check_specs=[STORED_CHECK_SPEC, RECORDED_CHECK_SPEC],
    partitions_def=jobs_partitions,
    pool=IMAGES_POOL,
    can_subset=False,
)
def process_job(
    context: dg.AssetExecutionContext,
    config: JobRunConfig,
    openai: OpenAIResource,
    s3: ImageflowS3Resource,
    dynamodb: DynamoDBResource,
    settings: SettingsResource,
):
    """Claims the job, runs its steps, renders its images, stores objects and artifact rows, then writes
    execution_steps.json and the job's status. A failed step fails the job and then the run, after everything
    made is recorded."""
    run_id = context.run.run_id
    with failing_job_on_error(context, dynamodb), claimed_job(context, config, dynamodb, s3) as inputs:
        tools = step_tools(context, config, inputs, openai, s3, dynamodb, settings)
        plan = _steps_phase(inputs, tools, dynamodb, run_id)
        if planned := planned_prompts_materialization(plan):
            yield planned
        if reports := step_reports_materialization(plan):
            yield reports
        progress = tools.progress  # one writer of live_step for the whole run: it knows a step failed
        live_rows = LiveArtifacts(dynamodb, plan.job, context.log)
        rendering = GenerationTools(openai=openai, s3=s3, progress=progress, log=context.log, artifacts=live_rows)
        images = images_phase(plan, rendering, dynamodb, run_id)
        if rendered := images_materialization(plan, images):
            yield rendered
        progress.recording(plan.steps[-1].number)  # step outputs, final document, rows, then the status
        objects = store_objects(s3, plan, images)
        yield objects_materialization(plan, images, objects, sum(1 for s in plan.steps if s.kind == "text"))
        rows = write_artifacts(dynamodb, plan.job, objects, live_rows)
        yield artifacts_materialization(rows, dynamodb.artifacts_table)
        outcome = finish_job(s3, dynamodb, plan, images, objects, rows, claim_id_of(context))
        if not outcome.failure and not outcome.handed_on:  # the seed's worker notifies on completion only
            notify_completed(dynamodb, plan.job, inputs.submission.submitter_email, context.log)
        cost = job_cost_usd(dynamodb, plan.job.job_id)
        yield execution_steps_events(plan, images, outcome, cost)
    if outcome.handed_on:
        _report_handed_on(context, outcome)
    elif outcome.failure:
        usages = plan.step_usages + [g.usage for g in images if g.usage]
        metadata = {"error_type": outcome.failure[1], **usage_metadata(usages), "openai.job_cost_usd": round(cost, 6)}
        raise dg.Failure(description=outcome.failure[0], metadata=metadata)


def _steps_phase(inputs: JobInputs, tools: StepTools, db: DynamoDBResource, run_id: str) -> JobPlan:
    """Every step run by its kind, then a usage row for each step's own model calls (a replayed answer made none)."""
    plan = run_steps(inputs, tools)
    for step in plan.steps:
        if step.ai and step.ai.usage and step.ai.usage.calls:
            service = TEXT_SERVICE if step.kind == "text" else PLANNER_SERVICE
            put_usage(db, usage_record(plan.job, run_id, step, service, step.ai.usage))
    return plan


def _report_handed_on(context: dg.AssetExecutionContext, outcome: JobOutcome) -> None:
    """The seed handed the job over again while this run worked (a step rerun requested meanwhile): the job stays
    `processing` with that hand-off's rerun fields and the sensor runs it next; this run's outcome is not the job's."""
    message = f"job {context.partition_key} was handed over again during this run: left `processing` for its next run"
    if outcome.failure:  # its failed assets have no materialization: the run must fail, the job does not
        raise dg.Failure(description=f"{message}; this run's failure ({outcome.failure[0]}) was not written")
    context.log.warning(message)
