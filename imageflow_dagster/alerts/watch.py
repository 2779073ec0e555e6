"""Where alerts come from.

Failed jobs: the run-status events Dagster's run-status sensors read (RUN_FAILURE, RUN_CANCELED, by event
storage id) of runs that worked on a job, each confirmed on the job's row. The row is the truth about the job (a
run that will be retried, or whose job was handed on, leaves it `processing`; the asset code's message is the one
written), the event is what makes a failure cheap to find: an indexed read of what is new, where the jobs table's
status index would have to be re-read whole (failed rows stay for ever, ordered by creation, not by failure).

Health: the quota, from the failed rows' error; the jobs sensor, from its tick history in the instance."""

from datetime import datetime, timezone

import dagster as dg
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.event_api import RunStatusChangeRecordsFilter
from dagster._core.events import DagsterEventType
from dagster._core.scheduler.instigation import TickStatus

from imageflow_dagster.alerts import text
from imageflow_dagster.alerts.digest import AlertState
from imageflow_dagster.flow.claim_runs import WILL_RETRY_TAG
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.run_tags import JOB_TAG, TENANT_TAG, WORKFLOW_NAME_TAG, WORKFLOW_TAG
from imageflow_dagster.settings import secret_values

EVENT_TYPES = (DagsterEventType.RUN_FAILURE, DagsterEventType.RUN_CANCELED)
EVENTS_PER_TICK = 200
# The run-failure sensors write the row within a tick or two (10 s each) of the run's end; a row still not `failed`
# after this never will be by that run (retried, handed on, completed by a rerun).
PENDING_GRACE_S = 120.0
QUOTA_ERROR_TYPES = {"QuotaExhausted", "insufficient_quota"}
JOBS_SENSOR = "processing_jobs_sensor"
# Consecutive failed ticks before the jobs sensor counts as failing: one flaky tick is retried by the next anyway.
FAILING_TICKS = 2


def start(instance: dg.DagsterInstance, state: AlertState) -> None:
    """A new sensor alerts from now on, as Dagster's run-status sensors do, not on the history before it."""
    for event_type in EVENT_TYPES:
        latest = instance.fetch_run_status_changes(RunStatusChangeRecordsFilter(event_type), limit=1).records
        state.after[event_type.value] = latest[0].storage_id if latest else 0


def read_ended_runs(instance: dg.DagsterInstance, state: AlertState, now: float) -> None:
    """Runs of imageflow jobs ended since the last tick join `pending`, to be confirmed on their job rows."""
    for event_type in EVENT_TYPES:
        after = state.after.get(event_type.value, 0)
        records = instance.fetch_run_status_changes(
            RunStatusChangeRecordsFilter(event_type, after_storage_id=after),
            limit=EVENTS_PER_TICK,
            ascending=True,
        ).records
        runs = _runs(instance, {record.event_log_entry.run_id for record in records})
        for record in records:
            run = runs.get(record.event_log_entry.run_id)
            if job_id := (job_of(run) if run else None):
                state.pending.append({"run": run.run_id, "job": job_id, "seen": now})
        if records:
            state.after[event_type.value] = records[-1].storage_id


def _runs(instance: dg.DagsterInstance, run_ids: set[str]) -> dict[str, dg.DagsterRun]:
    if not run_ids:
        return {}
    records = instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))
    return {record.dagster_run.run_id: record.dagster_run for record in records}


def job_of(run: dg.DagsterRun) -> str | None:
    """The imageflow job a run worked on: the sensor's job is partitioned by job id; a run launched by hand (the
    asset page's Materialize, a re-execution) runs another job but carries the job tag once it has started."""
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return None  # the daemon runs it again: the job is not over
    if run.job_name == image_generation_job.name:
        return run.tags.get("dagster/partition") or run.tags.get(JOB_TAG)
    return run.tags.get(JOB_TAG)


def confirm_pending(
    instance: dg.DagsterInstance, db: DynamoDBResource, state: AlertState, ui_url: str | None, now: float
) -> list[dict]:
    """Moves pending runs whose job row is `failed` to the queue; returns their rows (for the quota check)."""
    secrets = secret_values()
    still, failed_rows = [], []
    for entry in state.pending:
        row = db.get_item(db.jobs_table, {"job_id": entry["job"]})
        if row and row.get("status") == "failed":
            state.queue(_item(instance, entry, row, ui_url, secrets))
            failed_rows.append(row)
        elif row and row.get("status") == "processing" and now - entry["seen"] < PENDING_GRACE_S:
            still.append(entry)
    state.pending = still
    return failed_rows


def _item(
    instance: dg.DagsterInstance, entry: dict, row: dict, ui_url: str | None, secrets: list[str]
) -> dict:
    run = instance.get_run_by_id(entry["run"])
    tags = run.tags if run else {}
    workflow = tags.get(WORKFLOW_NAME_TAG) or row.get("workflow_id") or tags.get(WORKFLOW_TAG) or "?"
    keep = {entry["job"], entry["run"]}
    return {
        "job": text.scrubbed(entry["job"], secrets),
        "tenant": text.scrubbed(row.get("tenant_id") or tags.get(TENANT_TAG) or "?", secrets),
        "workflow": text.scrubbed(workflow, secrets),
        "error": text.error_line(row.get("error_message"), secrets, keep),
        "link": text.run_link(ui_url, entry["run"]),
    }


def is_quota(row: dict) -> bool:
    message = str(row.get("error_message") or "").lower()
    return (
        row.get("error_type") in QUOTA_ERROR_TYPES
        or "insufficient_quota" in message
        or "quota exhausted" in message
    )


def check_quota(instance: dg.DagsterInstance, state: AlertState, failed_rows: list[dict], now: float) -> None:
    """Alerted once when jobs fail for the OpenAI quota; recovered once a job's run succeeds after."""
    if state.quota_since is None:
        if any(is_quota(row) for row in failed_rows):
            state.quota_since = now
            state.notify(
                "imageflow: the OpenAI quota is exhausted (429 insufficient_quota): every job that calls OpenAI "
                "fails until the account's credit or budget is raised. Failed jobs are still named below."
            )
        return
    if _succeeded_since(instance, state.quota_since) and not any(is_quota(row) for row in failed_rows):
        state.quota_since = None
        state.notify("imageflow: recovered: a job completed again since the OpenAI quota was exhausted.")


def _succeeded_since(instance: dg.DagsterInstance, since: float) -> bool:
    runs_filter = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS], updated_after=datetime.fromtimestamp(since, timezone.utc)
    )
    return any(job_of(record.dagster_run) for record in instance.get_run_records(runs_filter, limit=20))


def check_jobs_sensor(instance: dg.DagsterInstance, state: AlertState, now: float) -> None:
    """Alerted once when the jobs sensor's latest ticks all failed (no job is claimed meanwhile); recovered at its
    first tick that did not fail."""
    ticks = _latest_ticks(instance)
    if not ticks:
        return
    failing = len(ticks) >= FAILING_TICKS and all(t.status == TickStatus.FAILURE for t in ticks)
    if failing and state.sensor_failing_since is None:
        state.sensor_failing_since = now
        error = ticks[0].error.message if ticks[0].error else "no error recorded"
        first = text.error_line(error, secret_values(), set())
        state.notify(
            f"imageflow: the jobs sensor ({JOBS_SENSOR}) is failing: its last {len(ticks)} ticks failed, no job is "
            f"claimed meanwhile. Latest error: {first}"
        )
    elif state.sensor_failing_since is not None and ticks[0].status != TickStatus.FAILURE:
        state.sensor_failing_since = None
        state.notify(f"imageflow: recovered: the jobs sensor ({JOBS_SENSOR}) ticks again without failing.")


def _latest_ticks(instance: dg.DagsterInstance) -> list:
    """The jobs sensor's latest finished ticks, newest first; none if it never ticked here."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    ticks = []
    for sensor_state in (s for s in states if s.instigator_name == JOBS_SENSOR):
        found = instance.get_ticks(
            sensor_state.instigator_origin_id, sensor_state.selector_id, limit=FAILING_TICKS + 1
        )
        ticks.extend(t for t in found if t.status != TickStatus.STARTED)
    return sorted(ticks, key=lambda t: t.timestamp, reverse=True)[:FAILING_TICKS]
