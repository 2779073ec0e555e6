"""Image artifact rows written as the images land: the seed's job page lists a job's artifacts every few seconds,
so each image shows up as soon as its bytes are in S3 instead of when the whole job is recorded.

A row here is the very row the run's final recording writes (assets/artifacts.py): the same stable id (job id +
S3 key) and the same content, so nothing is listed twice, and that pass skips a row written here with the same
content (`already_written`). Like `live_step`, a failed write is logged and never fails the image: the final pass
then writes the row.
"""

import logging

from imageflow_dagster.flow.job_store import put_artifact
from imageflow_dagster.flow.records import artifact_for
from imageflow_dagster.models import Artifact
from imageflow_dagster.models.pipeline import ImageRequest, JobIdentity, StoredObject
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource


def image_object(
    s3: ImageflowS3Resource, request: ImageRequest, step_name: str, content_type: str, size_bytes: int
) -> StoredObject:
    """An image as stored under its request-derived key; the one shape both writers of its row build."""
    return StoredObject(
        kind="image",
        step_index=request.step_index,
        key=request.key,
        url=request.url,
        s3_url=s3.s3_url(request.key),
        content_type=content_type,
        size_bytes=size_bytes,
        name=request.key.rsplit("/", 1)[-1],
        label=f"{step_name}: {request.label}",
    )


class LiveArtifacts:
    """One row per image, written from the image's own thread: boto3 clients are thread-safe and each row is a
    single UpdateItem on its own key, so no lock and no batching are needed."""

    def __init__(self, db: DynamoDBResource, job: JobIdentity, log: logging.Logger):
        self._db = db
        self._job = job
        self._log = log
        self._written: dict[str, dict] = {}  # artifact id -> the row's content as written; one key per thread

    def image_stored(self, image: StoredObject) -> None:
        row = artifact_for(self._job, image)
        try:
            put_artifact(self._db, row)
        except Exception as exc:  # the run's final recording writes the row
            self._log.warning(f"could not write the artifact row of {image.key} for {self._job.job_id}: {exc}")
            return
        self._written[row.artifact_id] = row_content(row)

    def already_written(self, row: Artifact) -> bool:
        return self._written.get(row.artifact_id) == row_content(row)


def row_content(row: Artifact) -> dict:
    """What a row says, apart from when it was made (`put_artifact` keeps the first `created_at` anyway)."""
    return row.model_dump(exclude={"created_at"})
