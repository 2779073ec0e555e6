"""The create-only rows that start a job, in the seed's formats: its submission and its job row with status
`processing`, which the jobs sensor then picks up. A handoff step (steps/handoff.py) starts its target job with
them; submit.py writes a whole job (form and workflow too) the way the seed's API does, for the CLI and tests.

Both are conditional puts, so whoever writes them again (a rerun of what made them) finds the row there instead of
starting a job twice. They only forward their caller's writes (imageflow_dagster_tests/aws_calls.py counts the
calls as made by the caller).
"""

from typing import Any

from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.resources.dynamodb import DynamoDBResource


def put_submission_row(
    db: DynamoDBResource,
    submission_id: str,
    tenant_id: str,
    workflow_id: str,
    answers: dict[str, Any],
    job_id: str,
    *,
    form_id: str | None = None,
    created_at: str | None = None,
    extra: dict[str, Any] | None = None,
) -> bool:
    """Create-only: False when the row exists already (a rerun of whatever made it)."""
    now = created_at or utc_now_iso()
    item = {
        "submission_id": submission_id,
        "tenant_id": tenant_id,
        "workflow_id": workflow_id,
        "submission_data": answers,
        "submitter_email": answers.get("email"),
        "created_at": now,
        "job_id": job_id,
        **({"form_id": form_id} if form_id else {}),
        **(extra or {}),
    }
    return db.put_item(db.submissions_table, item, condition="attribute_not_exists(submission_id)")


def put_job_row(
    db: DynamoDBResource,
    job_id: str,
    tenant_id: str,
    workflow_id: str,
    submission_id: str,
    *,
    status: str = "processing",
    created_at: str | None = None,
    extra: dict | None = None,
) -> bool:
    """Create-only: False when a job with this id exists already, so a job is never started twice. `extra`
    attributes (a handoff's depth) go in the same write."""
    now = created_at or utc_now_iso()
    item = {
        **(extra or {}),
        "job_id": job_id,
        "tenant_id": tenant_id,
        "workflow_id": workflow_id,
        "submission_id": submission_id,
        "status": status,
        "created_at": now,
        "updated_at": now,
    }
    return db.put_item(db.jobs_table, item, condition="attribute_not_exists(job_id)")
