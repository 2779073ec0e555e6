"""The job's record, written by one op: its S3 objects, their artifact rows, then `execution_steps.json` and the
final job status.

One op for three assets because each part only books what the one before it wrote, in order, and every op
boundary costs a run events and pickles (BENCHMARKS.md, case 0); the assets keep their own materializations,
checks and lineage.
"""

import dagster as dg

from imageflow_dagster.assets.artifacts import ARTIFACTS, artifacts_materialization, write_artifacts
from imageflow_dagster.assets.common import claim_id_of, failing_job_on_error
from imageflow_dagster.assets.execution_steps import (
    EXECUTION_STEPS,
    RECORDED_CHECK_SPEC,
    execution_steps_materialization,
    finish_job,
)
from imageflow_dagster.assets.storage import S3_OBJECTS, STORED_CHECK_SPEC, objects_materialization, store_objects
from imageflow_dagster.models.pipeline import GeneratedImage, JobPlan, StepPlan
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource


@dg.multi_asset(
    specs=[S3_OBJECTS, ARTIFACTS, EXECUTION_STEPS],
    check_specs=[STORED_CHECK_SPEC, RECORDED_CHECK_SPEC],
    ins={"planned_prompts": dg.AssetIn(), "step_reports": dg.AssetIn(), "generated_images": dg.AssetIn()},
    partitions_def=jobs_partitions,
)
def record_job(
    context: dg.AssetExecutionContext,
    planned_prompts: JobPlan,
    step_reports: list[StepPlan],
    generated_images: list[GeneratedImage],
    s3: ImageflowS3Resource,
    dynamodb: DynamoDBResource,
):
    """Stores step outputs and verifies images, writes one artifact row per object, then execution_steps.json
    and the job's status. A failed step fails the job and then this run, after everything made is recorded."""
    plan = planned_prompts
    with failing_job_on_error(context, dynamodb):
        objects = store_objects(s3, plan, generated_images)
        yield objects_materialization(plan, objects, len(step_reports))
        rows = write_artifacts(dynamodb, plan.job, objects)
        yield artifacts_materialization(rows, dynamodb.artifacts_table)
        outcome = finish_job(s3, dynamodb, plan, generated_images, objects, rows, claim_id_of(context))
        yield execution_steps_materialization(plan, generated_images, outcome)
    if outcome.failure:
        raise dg.Failure(description=outcome.failure[0], metadata={"error_type": outcome.failure[1]})
