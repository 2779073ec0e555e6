"""Jobs flow in by themselves: the sensor claims waiting jobs and launches one run each; run-status sensors end
the job `failed` when its run dies outside the asset code. Built by `jobs_sensors(settings)` where the definitions
are built: their intervals are settings; what a tick reads comes as the `settings` resource."""

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
from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.run_tags import CLAIM_TAG, sensor_run_tags
from imageflow_dagster.settings import Settings
from imageflow_dagster.steps.kinds import check_steps


def jobs_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The jobs sensor (a job waits for its next tick before anything else happens: settings.py says why every
    2 s) and the run-status sensors, which Dagster runs every 30 s by default, 5 runs a tick (settings.py's
    DAGSTER_DEFAULTS): a burst of crashed runs would leave its jobs `processing` for minutes."""
    running = dg.DefaultSensorStatus.RUNNING
    run_status_interval_s = settings.run_status_sensor_interval_s
    return [
        dg.sensor(
            name="processing_jobs_sensor",
            job=image_generation_job,
            minimum_interval_seconds=settings.sensor_interval_s,
            default_status=running,
            description="Claims jobs in `processing` (status GSI, oldest first) and requests one run per job.",
        )(claim_waiting_jobs),
        dg.run_failure_sensor(
            name="job_run_failure_sensor",
            monitored_jobs=[image_generation_job],
            minimum_interval_seconds=run_status_interval_s,
            default_status=running,
            description="Ends the job `failed` when its run failed outside the asset code (crash, timeout, "
            "killed worker).",
        )(fail_job_of_failed_run),
        dg.run_status_sensor(
            name="job_run_canceled_sensor",
            run_status=dg.DagsterRunStatus.CANCELED,
            monitored_jobs=[image_generation_job],
            minimum_interval_seconds=run_status_interval_s,
            default_status=running,
            description="Ends the job `failed` when its run was canceled.",
        )(fail_job_of_canceled_run),
    ]


@dataclass
class TickPlan:
    run_requests: list[dg.RunRequest]
    failed_jobs: int = 0
    skipped: int = 0
    claims: ClaimRuns = field(default_factory=ClaimRuns)


def claim_waiting_jobs(
    context: dg.SensorEvaluationContext, dynamodb: DynamoDBResource, settings: SettingsResource
):
    index = settings.jobs_status_index or None
    if index is None:
        context.log.warning(f"no status index configured: scanning the whole {dynamodb.jobs_table} table")
    cursor = QueueCursor.parse(context.cursor)
    tick = TickPlan(run_requests=[])
    admission = Admission(context.instance, settings)  # fair share and backpressure: flow/admission.py
    for status in settings.claim_statuses:
        batch = waiting_jobs(dynamodb, status, index, cursor, settings.sensor_max_items_per_tick)
        tick.claims.read(context.instance, batch.jobs, settings.sensor_unlaunched_grace_s)
        turn = admission.turn(batch, cursor.held.get(status, []), tick.run_requests)
        for job in turn:
            _consider(context, dynamodb, settings, job, tick)
        advance(cursor, batch, turn.passed, index, turn.held_tenants)
    keys = list(dict.fromkeys(request.partition_key for request in tick.run_requests))
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


def _consider(context, db: DynamoDBResource, settings: SettingsResource, job: dict, tick: TickPlan) -> None:
    """One job's decision; an error here is logged and only this job is skipped."""
    job_id = job.get("job_id", "?")
    try:
        if settings.require_handoff and not is_handed_over(job):
            tick.skipped += 1  # during a migration: the seed's own worker still owns jobs it was given
            return
        if job.get(CLAIM_ID) and job.get(LEASE_UNTIL, 0) > time.time():
            _relaunch_if_lost(context, job, tick, settings.sensor_unlaunched_grace_s)
            return
        if job.get(CLAIM_ID) in tick.claims.alive:
            _renew_for_its_run(db, job, tick)
            return
        claim = new_id("claim")
        try:
            inputs = load_job_inputs(db, job_id)
            check_steps(inputs)
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


def _claim(db: DynamoDBResource, settings: SettingsResource, job: dict, claim: str) -> dict | None:
    """Claims the entry into `processing` the job was read in: its hand-off mark, or none."""
    return claim_job(db, job["job_id"], claim, settings.claim_statuses, db.claim_lease_s, job.get(HANDOFF_MARK))


def _renew_for_its_run(db: DynamoDBResource, job: dict, tick: TickPlan) -> None:
    """The lease ran out while the claim's run waited in Dagster's queue (a run renews its own lease only once it
    works): the run still owns the job, so its claim is renewed, never taken over, however short the lease."""
    renew_lease(db, job["job_id"], job[CLAIM_ID], db.claim_lease_s)
    tick.skipped += 1


def _relaunch_if_lost(context, job: dict, tick: TickPlan, grace_s: int) -> None:
    """A claim made by a tick that died before submitting its runs (none after `grace_s`): its run again."""
    claim = job[CLAIM_ID]
    if claim in tick.claims.launched:
        tick.skipped += 1
        return
    claimed = _epoch(job.get(CLAIMED_AT))
    if claimed is not None and time.time() - claimed < grace_s:
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


def fail_job_of_failed_run(context: dg.RunFailureSensorContext, dynamodb: DynamoDBResource):
    reason = context.failure_event.message or "unknown error"
    _fail_job_of_run(context.dagster_run, dynamodb, f"Run {context.dagster_run.run_id} failed: {reason}", "RunFailed")


def fail_job_of_canceled_run(context: dg.RunStatusSensorContext, dynamodb: DynamoDBResource):
    _fail_job_of_run(context.dagster_run, dynamodb, f"Run {context.dagster_run.run_id} was canceled", "RunCanceled")


def _fail_job_of_run(run: dg.DagsterRun, db: DynamoDBResource, message: str, error_type: str) -> None:
    """Only a job still `processing` under this run's claim: the asset code's own failure message wins, and a
    run the daemon is about to retry (run_retries) keeps its job."""
    job_id = run.tags.get("dagster/partition")
    if job_id and run.tags.get(WILL_RETRY_TAG) != "true":
        claim = run.tags.get(CLAIM_TAG) or run.run_id
        mark_failed(db, job_id, message, error_type, claim_id=claim, only_if_processing=True)
        signals.run_of_job_failed(db, run)  # JobsFailed (EMF), whoever wrote the row
