"""Dynamic partitions of jobs that ended long ago are removed, so partition counts stay bounded (Dagster
recommends at most ~100k per asset) while millions of jobs pass. A removed partition only drops the job from
Dagster's partition list; the sensor adds it back if the job is ever rerun."""

from datetime import datetime, timedelta, timezone

import dagster as dg

from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.retention.job_rows import CHUNK, ended_before, job_rows


@dg.op(description="Removes partitions of jobs that ended more than IMAGEFLOW_PARTITION_RETENTION_DAYS ago.")
def remove_ended_job_partitions(
    context: dg.OpExecutionContext, dynamodb: DynamoDBResource, settings: SettingsResource
) -> int:
    days = settings.partition_retention_days
    cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")
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
    rows = job_rows(db, job_ids)
    return [j for j in job_ids if j not in rows or ended_before(rows[j], cutoff_iso)]
