"""Write a job the way the seed's API does: form, workflow, submission and job rows in the seed's formats.

Used by `imageflow submit`, the dev demo, tests and benchmarks; production jobs come from the seed's API.
"""

from dataclasses import dataclass
from typing import Any

from imageflow_dagster.flow.new_job_rows import put_job_row, put_submission_row
from imageflow_dagster.ids import new_id, utc_now_iso
from imageflow_dagster.resources.dynamodb import DynamoDBResource


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    tenant_id: str
    workflow_id: str
    submission_id: str
    form_id: str


def submit_job(
    db: DynamoDBResource,
    *,
    workflow: dict[str, Any],
    answers: dict[str, Any],
    tenant_id: str = "tenant_demo",
    form_fields: list[dict[str, Any]] | None = None,
    status: str = "processing",
) -> SubmittedJob:
    """`workflow` is a seed workflow document (`workflow_name`, `steps`, ...); ids are generated here."""
    now = utc_now_iso()
    form_id, workflow_id = new_id("form"), new_id("wf")
    submission_id, job_id = new_id("sub"), new_id("job")
    fields = form_fields or [{"field_id": key, "label": key.replace("_", " ").title(), "field_type": "text"} for key in answers]
    db.put_item(
        db.forms_table,
        {
            "form_id": form_id,
            "tenant_id": tenant_id,
            "workflow_id": workflow_id,
            "form_name": f"{workflow.get('workflow_name', 'Workflow')} form",
            "form_fields_schema": {"fields": fields},
            "created_at": now,
        },
    )
    db.put_item(
        db.workflows_table,
        {
            "status": "active",
            "version": 1,
            **workflow,
            "workflow_id": workflow_id,
            "tenant_id": tenant_id,
            "form_id": form_id,
            "created_at": now,
            "updated_at": now,
        },
    )
    put_submission_row(db, submission_id, tenant_id, workflow_id, answers, job_id, form_id=form_id, created_at=now)
    put_job_row(db, job_id, tenant_id, workflow_id, submission_id, status=status, created_at=now)
    return SubmittedJob(job_id, tenant_id, workflow_id, submission_id, form_id)
