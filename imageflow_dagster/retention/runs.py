"""Dagster runs of jobs that ended long ago are deleted with their event logs and compute logs, so Postgres
(and the compute-log prefix in S3) stays bounded while millions of jobs pass. The jobs' DynamoDB rows and S3
objects (images, execution_steps.json) stay: they are the system of record, and `imageflow status` reads them.

Bounded: at most `max_runs` runs per execution; the rest waits for the next one. Resumable: a run's compute
logs go first, then its events, then its row, so a crash at any point leaves the run listed and the next
execution deletes it again from the start (every step is idempotent)."""

from datetime import datetime, timedelta, timezone

import dagster as dg
from pydantic import Field

from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.retention.job_rows import CHUNK, ended_before, job_rows
from imageflow_dagster.run_tags import JOB_TAG

RETENTION_JOB = "partition_retention_job"
PARTITION_TAG = "dagster/partition"
ENDED_RUNS = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class RunRetentionConfig(dg.Config):
    # A run is a few Postgres deletes and one S3 DeleteObjects: 0.2 s or less (measured on a loaded 2-core
    # machine against moto), so the default bounds an execution near half an hour. A deployment ending more
    # jobs a day raises it or runs the schedule more often (IMAGEFLOW_RETENTION_CRON).
    max_runs: int = Field(default=10_000, ge=1, description="Runs deleted per execution at most.")


@dg.op(description="Deletes runs and their logs of jobs ended over IMAGEFLOW_RUN_RETENTION_DAYS ago.")
def delete_ended_job_runs(
    context: dg.OpExecutionContext, config: RunRetentionConfig, dynamodb: DynamoDBResource, settings: SettingsResource
) -> int:
    days = settings.run_retention_days
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    deleted, kept = purge_runs(context.instance, dynamodb, cutoff, config.max_runs)
    more = " (the bound: the next execution continues)" if deleted == config.max_runs else ""
    context.log.info(
        f"deleted {deleted} run(s) of jobs ended before {cutoff:%Y-%m-%dT%H:%M:%S}Z{more}; kept {kept} ended "
        "run(s) of jobs not yet past retention, still running, or not imageflow's"
    )
    return deleted


def purge_runs(
    instance: dg.DagsterInstance, db: DynamoDBResource, cutoff: datetime, limit: int
) -> tuple[int, int]:
    """Deletes up to `limit` expired runs ended before `cutoff`, oldest first; returns (deleted, kept)."""
    # A run's last update is its end or later: the filter never lists a run that ended after the cutoff.
    ended = dg.RunsFilter(statuses=ENDED_RUNS, updated_before=cutoff)
    cutoff_iso = iso_from_epoch(cutoff.timestamp())
    deleted, kept, cursor = 0, 0, None
    while deleted < limit:
        page = instance.get_run_records(ended, limit=CHUNK, ascending=True, cursor=cursor)
        expired = set(expired_runs(db, [record.dagster_run for record in page], cutoff_iso))
        for record in page:
            run_id = record.dagster_run.run_id
            if run_id not in expired:
                # The cursor must name a run that still exists (Dagster looks its id up): a kept one does.
                cursor, kept = run_id, kept + 1
            elif deleted < limit:
                delete_run_and_logs(instance, run_id)
                deleted += 1
        if len(page) < CHUNK:
            break
    return deleted, kept


def expired_runs(db: DynamoDBResource, runs: list[dg.DagsterRun], cutoff_iso: str) -> list[str]:
    """Ids of the ended `runs` to delete: the job's row decides; runs of other Dagster jobs are not ours."""
    job_ids = {run.run_id: run.tags.get(JOB_TAG) or run.tags.get(PARTITION_TAG) for run in runs}
    rows = job_rows(db, sorted({job_id for job_id in job_ids.values() if job_id}))
    return [run.run_id for run in runs if _expired(run, rows.get(job_ids[run.run_id] or ""), cutoff_iso)]


def _expired(run: dg.DagsterRun, row: dict | None, cutoff_iso: str) -> bool:
    if run.job_name == RETENTION_JOB:
        return True  # by its own end time, which the runs filter already compared
    if row is None:
        # No row: a run that named its job had it deleted (nothing left to protect); a partition key with no
        # job row is another partitioned job's (a date), kept.
        return JOB_TAG in run.tags
    return ended_before(row, cutoff_iso)


def delete_run_and_logs(instance: dg.DagsterInstance, run_id: str) -> None:
    """`instance.delete_run` removes the run's row, then its events, never its compute logs (S3 here): those
    go first, found through the run's LOGS_CAPTURED events, and the events go before the row, so a crash
    between the steps leaves a run the next execution finds again, not orphaned events or logs."""
    logs = instance.compute_log_manager
    for file_key in _captured_file_keys(instance, run_id):
        logs.delete_logs(log_key=logs.build_log_key_for_run(run_id, file_key))
    instance.event_log_storage.delete_events(run_id)
    instance.delete_run(run_id)


def _captured_file_keys(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    captured = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    return list(dict.fromkeys(entry.dagster_event.logs_captured_data.file_key for entry in captured))
