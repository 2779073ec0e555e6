"""The seed's "Lead magnet delivered" notification, written when a job ends completed.

The seed's worker writes it at the end of `finalize_job` (services/job_completion_service.py
`_create_completion_notification`, via db_service.py `create_notification`) and nowhere else: a failed job gets
none. The seed's `GET /admin/notifications` lists the row and the UI's bell shows it, so the row is the seed's to
the field: same id, fields, types and TTL. The id names the job, and the write is create-only, so a rerun or a
second completion never adds a row nor overwrites one the tenant has marked read.
"""

import logging
import time

from botocore.exceptions import BotoCoreError

from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.models import Notification
from imageflow_dagster.models.pipeline import JobIdentity
from imageflow_dagster.resources.dynamodb import DynamoDBResource, TableError

JOB_COMPLETED = "job_completed"
TITLE = "Lead magnet delivered"
TTL_S = 90 * 24 * 60 * 60
# What the seed's message says when the workflow has no name or the submission no email.
UNNAMED_WORKFLOW = "Lead magnet"
UNKNOWN_SUBMITTER = "customer"


def notification_id(tenant_id: str, job_id: str) -> str:
    return f"notif_{tenant_id}_{JOB_COMPLETED}_job_{job_id}"


def completion_notification(job: JobIdentity, submitter_email: str | None, now: float | None = None) -> Notification:
    moment = time.time() if now is None else now
    workflow_name = job.workflow_name or UNNAMED_WORKFLOW
    submitter = submitter_email or UNKNOWN_SUBMITTER
    return Notification(
        notification_id=notification_id(job.tenant_id, job.job_id),
        tenant_id=job.tenant_id,
        type=JOB_COMPLETED,
        title=TITLE,
        message=f'Your lead magnet "{workflow_name}" has been delivered for {submitter}.',
        read=False,
        created_at=iso_from_epoch(moment),
        ttl=int(moment) + TTL_S,
        related_resource_id=job.job_id,
        related_resource_type="job",
    )


def notify_completed(
    db: DynamoDBResource, job: JobIdentity, submitter_email: str | None, log: logging.Logger
) -> bool:
    """Creates the job's notification unless it exists; True when this call created it. The job is delivered
    already, so a missing table or a refused write is a warning for the operator, never a failed job."""
    row = completion_notification(job, submitter_email)
    try:
        created = db.put_item(
            db.notifications_table, row.model_dump(), condition="attribute_not_exists(notification_id)"
        )
    except (TableError, BotoCoreError) as exc:
        log.warning(f"job {job.job_id} completed without its notification in {db.notifications_table}: {exc}")
        return False
    if not created:
        log.info(f"job {job.job_id}: notification {row.notification_id} exists already; left as it is")
    return created
