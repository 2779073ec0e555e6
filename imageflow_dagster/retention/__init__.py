"""Retention: Dagster forgets jobs that ended long ago, so its Postgres stays bounded while millions of jobs
pass. One daily job removes their dynamic partitions (partitions.py) and deletes their runs with the runs'
event logs and compute logs (runs.py). DynamoDB rows and S3 objects stay: they are the system of record.
Sensor and schedule ticks are purged by the daemon itself, as deploy/dagster.yaml's `retention:` says."""

import dagster as dg

from imageflow_dagster.retention.job_rows import CHUNK, ENDED
from imageflow_dagster.retention.partitions import expired_jobs, remove_ended_job_partitions
from imageflow_dagster.retention.runs import RETENTION_JOB, delete_ended_job_runs
from imageflow_dagster.settings import Settings

__all__ = ["CHUNK", "ENDED", "expired_jobs", "partition_retention_job", "retention_schedule"]


@dg.job(name=RETENTION_JOB, description="Removes long-ended jobs' partitions and runs; keeps rows, objects.")
def partition_retention_job():
    remove_ended_job_partitions()
    delete_ended_job_runs()


def retention_schedule(settings: Settings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="partition_retention_schedule",
        job=partition_retention_job,
        cron_schedule=settings.retention_cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
