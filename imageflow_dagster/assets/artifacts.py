"""`artifacts`: one artifacts-table row per S3 object (images and step outputs)."""

import dagster as dg

from imageflow_dagster.assets.common import job_asset
from imageflow_dagster.assets.lineage import artifacts_listing
from imageflow_dagster.flow.job_store import put_artifact
from imageflow_dagster.flow.live_artifacts import LiveArtifacts
from imageflow_dagster.flow.parallel import BOOKKEEPING_WORKERS, parallel_map
from imageflow_dagster.flow.records import artifact_for
from imageflow_dagster.models import Artifact
from imageflow_dagster.models.pipeline import JobIdentity, StoredObject
from imageflow_dagster.resources.dynamodb import DynamoDBResource

ARTIFACTS = job_asset(
    "artifacts",
    deps=["s3_objects"],
    description="One artifacts-table row per S3 object. Ids derive from the job and the key, so a rerun updates "
    "the same rows instead of adding new ones.",
    kinds={"dynamodb"},
    stage="records",
)


def write_artifacts(
    db: DynamoDBResource, job: JobIdentity, objects: list[StoredObject], live: LiveArtifacts | None = None
) -> list[Artifact]:
    """Every object's row; rows the images wrote as they landed (`live`) with this very content are not rewritten."""
    rows = [artifact_for(job, obj) for obj in objects]
    pending = [row for row in rows if not (live and live.already_written(row))]
    parallel_map(lambda row: put_artifact(db, row), pending, workers=BOOKKEEPING_WORKERS)
    return rows


def artifacts_materialization(rows: list[Artifact], table: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        asset_key=ARTIFACTS.key,
        metadata={
            "artifacts": len(rows),
            "image_artifacts": sum(1 for row in rows if row.artifact_type == "image"),
            "rows": artifacts_listing(rows),
            "table": table,
        },
    )
