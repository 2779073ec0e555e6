"""Jobs flow in by themselves: the sensor claims waiting jobs and launches one run each; run-status sensors end
the job `failed` when its run dies outside the asset code."""

import os
import time
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg

from imageflow_dagster.alerts import runless
from imageflow_dagster.flow.claim_runs import WILL_RETRY_TAG, ClaimRuns
from imageflow_dagster.flow.admission import Admission
from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.flow.job_queue import QueueCursor, advance, waiting_jobs
from imageflow_dagster.flow.job_store import (
    CLAIM_ID,
    CLAIMED_AT,
    LEASE_UNTIL,
    Finish,
    claim_job,
    mark_failed,
    renew_lease,
)
from imageflow_dagster.flow.loading import load_job_inputs
from imageflow_dagster.flow.seed_handoff import HANDOFF_MARK, claimed_rerun_config, is_handed_over, step_rerun_config
from imageflow_dagster.ids import new_id
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.observability import signals
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.run_tags import CLAIM_TAG, sensor_run_tags
from imageflow_dagster.settings import Settings

# A job waits for the next tick before anything else happens: every 2 s keeps the wait before its first OpenAI call
# under 10 s at p95, where 5 s did not (BENCHMARKS.md 9a). A tick is one status-index query (at most 500 items) and
# two run-storage reads.
SENSOR_INTERVAL_S = int(os.getenv("IMAGEFLOW_SENSOR_INTERVAL_S", "2"))
# Jobs read per tick: bounds tick time (the daemon gives a tick 60 s) while thousands of jobs drain.
MAX_ITEMS_PER_TICK = int(os.getenv("IMAGEFLOW_SENSOR_MAX_ITEMS_PER_TICK", "500"))
# A claim with no run after this long was made by a tick that died before submitting its runs.
UNLAUNCHED_GRACE_S = int(os.getenv("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", "60"))


@dataclass
class TickPlan:
    run_requests: list[dg.RunRequest]
    failed_jobs: int = 0
    skipped: int = 0
    claims: ClaimRuns = field(default_factory=ClaimRuns)


@dg.sensor(
    job=image_generation_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims jobs in `processing` (status GSI, oldest first) and requests one run per job.",
)
def processing_jobs_sensor(context: dg.SensorEvaluationContext, dynamodb: DynamoDBResource):
    settings = Settings.from_env()
    index = settings.jobs_status_index or None
    if index is None:
        context.log.warning(f"no status index configured: scanning the whole {dynamodb.jobs_table} table")
    cursor = QueueCursor.parse(context.cursor)
    tick = TickPlan(run_requests=[])
    admission = Admission(context.instance, settings)  # fair share and backpressure: flow/admission.py
    for status in settings.claim_statuses:
        batch = waiting_jobs(dynamodb, status, index, cursor, MAX_ITEMS_PER_TICK)
        tick.claims.read(context.instance, batch.jobs, UNLAUNCHED_GRACE_S)
        turn = admission.turn(batch, cursor.held.get(status, []), tick.run_requests)
        for job in turn:
            _consider(context, dynamodb, settings, job, tick)
        advance(cursor, batch, turn.passed, index, turn.held_tenants)
    keys = list(dict.fromkeys(r.partition_key for r in tick.run_requests))
    context.log.info(
        f"{len(keys)} run(s) requested, {tick.failed_jobs} bad job(s) failed, {tick.skipped} skipped, "
        f"{admission.held} held for their tenant's share or a full run queue"
    )
    signals.sensor_tick(context.instance, admission, tick.run_requests)  # JobsWaiting, RunsQueued (EMF)
    return dg.SensorResult(
        run_requests=tick.run_requests,
        dynamic_partitions_requests=[jobs_partitions.build_add_request(keys)] if keys else [],
        cursor=cursor.dump(),
    )


def _consider(context, db: DynamoDBResource, settings: Settings, job: dict, tick: TickPlan) -> None:
    """One job's decision; an error here is logged and only this job is skipped."""
    job_id = job.get("job_id", "?")
    try:
        if settings.require_handoff and not is_handed_over(job):
            tick.skipped += 1  # during a migration: the seed's own worker still owns jobs it was given
            return
        if job.get(CLAIM_ID) and job.get(LEASE_UNTIL, 0) > time.time():
            _relaunch_if_lost(context, job, tick)
            return
        if job.get(CLAIM_ID) in tick.claims.alive:
            _renew_for_its_run(db, job, tick)
            return
        claim = new_id("claim")
        try:
            inputs = load_job_inputs(db, job_id)
        except BadRecordError as bad:
            if claimed := _claim(db, settings, job, claim):
                written = mark_failed(db, job_id, str(bad), bad.error_type, claim_id=claim)
                if written is Finish.WRITTEN:
                    tick.failed_jobs += 1
                    signals.job_failed(job_id, bad.error_type, tenant_id=job.get("tenant_id"))
                    # No run will end for it: the alert sensor reads this record instead (alerts/runless.py).
                    runless.record(context.instance, claimed, str(bad), bad.error_type, context.log)
            return
        # The run is built from the item the claim wrote, not the one read: a hand-off may have landed in between.
        if claimed := _claim(db, settings, job, claim):
            run_config = step_rerun_config(claimed)
            tick.run_requests.append(_run_request(claimed, claim, run_config, inputs.workflow.workflow_name))
        else:
            tick.skipped += 1  # another claimer won, or the index was stale: not an error
    except Exception as exc:
        tick.skipped += 1
        context.log.error(f"skipping job {job_id} this tick: {type(exc).__name__}: {exc}")


def _claim(db: DynamoDBResource, settings: Settings, job: dict, claim: str) -> dict | None:
    """Claims the entry into `processing` the job was read in: its hand-off mark, or none."""
    return claim_job(db, job["job_id"], claim, settings.claim_statuses, db.claim_lease_s, job.get(HANDOFF_MARK))


def _renew_for_its_run(db: DynamoDBResource, job: dict, tick: TickPlan) -> None:
    """The lease ran out while the claim's run waited in Dagster's queue (a run renews its own lease only once it
    works): the run still owns the job, so its claim is renewed, never taken over, however short the lease."""
    renew_lease(db, job["job_id"], job[CLAIM_ID], db.claim_lease_s)
    tick.skipped += 1


def _relaunch_if_lost(context, job: dict, tick: TickPlan) -> None:
    claim = job[CLAIM_ID]
    if claim in tick.claims.launched:
        tick.skipped += 1
        return
    claimed = _epoch(job.get(CLAIMED_AT))
    if claimed is not None and time.time() - claimed < UNLAUNCHED_GRACE_S:
        tick.skipped += 1  # its run may still be on the way from the tick that claimed it
        return
    context.log.warning(f"job {job['job_id']} was claimed ({claim}) but has no run: requesting it again")
    tick.run_requests.append(_run_request(job, claim, claimed_rerun_config(job)))


def _run_request(job: dict, claim: str, run_config: dict, workflow_name: str | None = None) -> dg.RunRequest:
    tags = sensor_run_tags(job["job_id"], job.get("tenant_id", ""), job.get("workflow_id", ""), workflow_name)
    return dg.RunRequest(
        partition_key=job["job_id"],
        run_key=f"{job['job_id']}:{claim}",
        tags={CLAIM_TAG: claim, **tags},
        run_config=run_config,
    )



def _epoch(iso: str | None) -> float | None:
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# Dagster's run-status sensors handle at most 5 runs per tick (DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT, read in the
# process that evaluates them: this code's), every 30 s by default: a burst of crashed runs would leave its jobs
# `processing` for minutes. An operator's own values win.
RUN_STATUS_SENSOR_INTERVAL_S = int(os.getenv("IMAGEFLOW_RUN_STATUS_SENSOR_INTERVAL_S", "10"))
os.environ.setdefault("DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT", "100")
os.environ.setdefault("DAGSTER_RUN_STATUS_SENSOR_FETCH_LIMIT", "200")  # run events read per tick, any job's


@dg.run_failure_sensor(
    monitored_jobs=[image_generation_job],
    minimum_interval_seconds=RUN_STATUS_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ends the job `failed` when its run failed outside the asset code (crash, timeout, killed worker).",
)
def job_run_failure_sensor(context: dg.RunFailureSensorContext, dynamodb: DynamoDBResource):
    reason = context.failure_event.message or "unknown error"
    _fail_job_of_run(context.dagster_run, dynamodb, f"Run {context.dagster_run.run_id} failed: {reason}", "RunFailed")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[image_generation_job],
    minimum_interval_seconds=RUN_STATUS_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Ends the job `failed` when its run was canceled.",
)
def job_run_canceled_sensor(context: dg.RunStatusSensorContext, dynamodb: DynamoDBResource):
    _fail_job_of_run(context.dagster_run, dynamodb, f"Run {context.dagster_run.run_id} was canceled", "RunCanceled")


def _fail_job_of_run(run: dg.DagsterRun, db: DynamoDBResource, message: str, error_type: str) -> None:
    """Only a job still `processing` under this run's claim: the asset code's own failure message wins, and a
    run the daemon is about to retry (run_retries) keeps its job."""
    job_id = run.tags.get("dagster/partition")
    if job_id and run.tags.get(WILL_RETRY_TAG) != "true":
        claim = run.tags.get(CLAIM_TAG) or run.run_id
        mark_failed(db, job_id, message, error_type, claim_id=claim, only_if_processing=True)
        signals.run_of_job_failed(db, run)  # JobsFailed (EMF), whoever wrote the row
