"""The jobs' DynamoDB rows decide retention: Dagster forgets a job only once its row says it ended long
enough ago."""

from imageflow_dagster.resources.dynamodb import DynamoDBResource, deserialize_item

CHUNK = 100  # BatchGetItem's limit
ENDED = ("completed", "failed")


def ended_at(row: dict) -> str:
    """When the job ended, as the ISO string its row holds ('' if the row names no time)."""
    return str(row.get("completed_at") or row.get("failed_at") or row.get("updated_at") or "")


def ended_before(row: dict, cutoff_iso: str) -> bool:
    """Ended, and before the cutoff: a job still `processing` (or queued, claimed, pending) never is."""
    return row.get("status") in ENDED and ended_at(row) < cutoff_iso


def job_rows(db: DynamoDBResource, job_ids: list[str]) -> dict[str, dict]:
    """The rows of `job_ids` that exist, by job id: at most CHUNK ids, no duplicates (BatchGetItem refuses
    both)."""
    rows: dict[str, dict] = {}
    request = {
        db.jobs_table: {
            "Keys": [{"job_id": {"S": j}} for j in job_ids],
            "ProjectionExpression": "job_id, #s, completed_at, failed_at, updated_at",
            "ExpressionAttributeNames": {"#s": "status"},
        }
    }
    while request and job_ids:
        response = db.get_client().batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(db.jobs_table, []):
            row = deserialize_item(raw)
            rows[row["job_id"]] = row
        request = response.get("UnprocessedKeys") or None
    return rows
