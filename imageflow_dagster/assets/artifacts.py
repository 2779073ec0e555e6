import dagster as dg

from imageflow_dagster.assets.common import GROUP, failing_job_on_error
from imageflow_dagster.flow.job_store import put_artifact
from imageflow_dagster.flow.records import artifact_for
from imageflow_dagster.models.pipeline import JobArtifacts, JobObjects
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource


@dg.asset(partitions_def=jobs_partitions, group_name=GROUP, kinds={"dynamodb"})
def artifacts(
    context: dg.AssetExecutionContext, s3_objects: JobObjects, dynamodb: DynamoDBResource
) -> dg.Output[JobArtifacts]:
    """One artifacts-table row per S3 object (images and step outputs). Ids derive from the job and the key,
    so a rerun updates the same rows instead of adding new ones."""
    with failing_job_on_error(context, dynamodb):
        rows = [artifact_for(s3_objects.job, obj) for obj in s3_objects.objects]
        for row in rows:
            put_artifact(dynamodb, row)
    ids = {row.s3_key: row.artifact_id for row in rows}
    return dg.Output(
        JobArtifacts(job=s3_objects.job, artifact_ids=ids, output_keys=s3_objects.output_keys),
        metadata={
            "artifacts": len(rows),
            "image_artifacts": sum(1 for r in rows if r.artifact_type == "image"),
            "artifact_ids": dg.MetadataValue.json([r.artifact_id for r in rows]),
            "table": dynamodb.artifacts_table,
        },
    )
