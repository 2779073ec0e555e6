"""Retention: dynamic partitions of jobs that ended long ago are removed, so partition counts stay bounded
(Dagster recommends at most ~100k per asset) while millions of jobs pass. DynamoDB rows and S3 objects stay:
they are the system of record; a removed partition only drops the job from Dagster's partition list."""

import os
from datetime import UTC, datetime, timedelta

import dagster as dg

from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource, deserialize_item
from imageflow_dagster.settings import Settings

CHUNK = 100  # BatchGetItem's limit
ENDED = ("completed", "failed")


@dg.op(description="Removes partitions of jobs that ended more than IMAGEFLOW_PARTITION_RETENTION_DAYS ago.")
def remove_ended_job_partitions(context: dg.OpExecutionContext, dynamodb: DynamoDBResource) -> int:
    days = Settings.from_env().partition_retention_days
    cutoff = (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
    removed, cursor = 0, None
    while True:
        page = context.instance.get_paginated_dynamic_partitions(jobs_partitions.name, CHUNK, True, cursor)
        for job_id in expired_jobs(dynamodb, page.results, cutoff):
            context.instance.delete_dynamic_partition(jobs_partitions.name, job_id)
            removed += 1
        if not page.has_more:
            break
        cursor = page.cursor
    context.log.info(f"removed {removed} partition(s) of jobs ended before {cutoff}Z")
    return removed


def expired_jobs(db: DynamoDBResource, job_ids: list[str], cutoff_iso: str) -> list[str]:
    """Jobs among `job_ids` that ended before the cutoff, or whose row no longer exists."""
    rows = _rows(db, job_ids)
    expired = []
    for job_id in job_ids:
        row = rows.get(job_id)
        ended_at = (row or {}).get("completed_at") or (row or {}).get("failed_at") or (row or {}).get("updated_at")
        if row is None or (row.get("status") in ENDED and str(ended_at or "") < cutoff_iso):
            expired.append(job_id)
    return expired


def _rows(db: DynamoDBResource, job_ids: list[str]) -> dict[str, dict]:
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


@dg.job(description="Removes dynamic partitions of long-ended jobs; rows and objects are kept.")
def partition_retention_job():
    remove_ended_job_partitions()


partition_retention_schedule = dg.ScheduleDefinition(
    job=partition_retention_job,
    cron_schedule=os.getenv("IMAGEFLOW_RETENTION_CRON", "17 3 * * *"),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
