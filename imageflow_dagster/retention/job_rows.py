"""The jobs' DynamoDB rows decide retention: Dagster forgets a job only once its row says it ended long
enough ago."""

from imageflow_dagster.resources.dynamodb import BATCH_GET_LIMIT, DynamoDBResource

CHUNK = BATCH_GET_LIMIT  # partitions and runs are read in pages that one BatchGetItem answers
ENDED = ("completed", "failed")


def ended_at(row: dict) -> str:
    """When the job ended, as the ISO string its row holds ('' if the row names no time)."""
    return str(row.get("completed_at") or row.get("failed_at") or row.get("updated_at") or "")


def ended_before(row: dict, cutoff_iso: str) -> bool:
    """Ended, and before the cutoff: a job still `processing` (or queued, claimed, pending) never is."""
    return row.get("status") in ENDED and ended_at(row) < cutoff_iso


def job_rows(db: DynamoDBResource, job_ids: list[str]) -> dict[str, dict]:
    """The rows of `job_ids` that exist, by job id, with what retention reads of them."""
    keys = [{"job_id": job_id} for job_id in job_ids]
    rows = db.batch_get(db.jobs_table, keys, ["job_id", "status", "completed_at", "failed_at", "updated_at"])
    return {row["job_id"]: row for row in rows}
