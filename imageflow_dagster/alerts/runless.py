"""Jobs failed without a run: the jobs sensor fails a job whose records cannot run (the
BadRecordError of flow/loading.py or steps/kinds.py: a missing workflow, an invalid id, a malformed step) straight in DynamoDB and launches nothing, so
no run-status event will ever name it. The jobs sensor records each such failure here; the alert sensor reads the
records after its own cursor and queues them with the other failed jobs (same digest, same rate, no run link).

Where the record lives, and why there: a runless AssetObservation on one asset key
(`instance.report_runless_asset_event`), read back with `instance.fetch_observations` by storage id.
- It is ordered and indexed like the run-status events the alert sensor already reads: one query for what is new
  after a storage id it keeps in its cursor; nothing is read twice or lost across daemon restarts.
- It is written right after the failure, by the code that wrote it. The tick's own `SensorResult(asset_events=...)`
  would be stored by the daemon only once the whole tick returned: a tick that fails later (the next status's
  query, a timeout) would drop records of failures DynamoDB already holds.
- It is visible: the UI's asset catalog lists the key (with no definition) and its page the observations with
  their metadata.
- Not Dagster's KV store (`instance.run_storage.get_cursor_values`): a key per value, no order, no "what is new";
  a queue there would be a read-modify-write shared by two sensors. Not the jobs table: failed rows stay for
  ever and its status index is ordered by creation, not by failure (watch.py), so "new failures" is a full read.

A record holds what an alert may say, masked as an alert masks it (text.py), since the UI shows it too. It is one
event-log row a bad job, and nothing purges it: partition_retention_job deletes runs, and these belong to none
(`dagster asset wipe` hides them from the UI but leaves the rows). Bad jobs are rare (a deleted workflow, a hand-made
record), so the rows are too; a retention pass over this key is left to do."""

import logging

import dagster as dg
from dagster._core.event_api import EventLogRecord

from imageflow_dagster.alerts import text
from imageflow_dagster.alerts.digest import AlertState
from imageflow_dagster.settings import secret_values

ASSET_KEY = dg.AssetKey("imageflow_jobs_failed_without_run")
CURSOR_KEY = "FAILED_WITHOUT_RUN"  # its place in AlertState.after, beside the run-status event types
RECORDS_PER_TICK = 200
IDS = ("job_id", "tenant_id", "workflow_id")  # what a record names, as the jobs table names it


def record(instance: dg.DagsterInstance, job: dict, message: str, error_type: str, log: logging.Logger) -> None:
    """Called by the jobs sensor once its failure of `job` is written. A record that cannot be written loses only
    the alert, never the failure: it is logged and the tick goes on."""
    secrets = secret_values()
    ids = {name: str(job.get(name) or "?") for name in IDS}
    job_id = ids["job_id"]
    metadata = {
        **{name: text.scrubbed(value, secrets) for name, value in ids.items()},
        "error_type": text.scrubbed(error_type, secrets),
        # The ids the alert names anyway are kept: "Workflow wf_01… not found" looks like a token otherwise.
        "error": text.error_line(message, secrets, set(ids.values())),
    }
    observation = dg.AssetObservation(
        asset_key=ASSET_KEY, description=f"job {metadata['job_id']} failed before any run", metadata=metadata
    )
    try:
        instance.report_runless_asset_event(observation)
    except Exception as exc:  # the instance's storage: no alert will name this job, the log line does
        log.error(f"job {job_id} failed without a run, and its alert record was not written: {type(exc).__name__}")


def start(instance: dg.DagsterInstance, state: AlertState) -> None:
    """A new alert sensor alerts from now on, not on failures recorded before it."""
    latest = instance.fetch_observations(ASSET_KEY, limit=1).records
    state.after[CURSOR_KEY] = latest[0].storage_id if latest else 0


def read(instance: dg.DagsterInstance, state: AlertState) -> None:
    """Records since the last tick join the queue of failed jobs. A cursor saved before this reader existed has no
    entry and reads from the start: every record was made after the upgrade that added both."""
    after = state.after.get(CURSOR_KEY, 0)
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=ASSET_KEY, after_storage_id=after), limit=RECORDS_PER_TICK, ascending=True
    ).records
    secrets = secret_values()
    for entry in records:
        state.queue(_item(entry, secrets))
    if records:
        state.after[CURSOR_KEY] = records[-1].storage_id


def _item(entry: EventLogRecord, secrets: list[str]) -> dict:
    """An alert item as watch.py makes them, without a run link; masked again with the secrets of now."""
    metadata = entry.asset_observation.metadata if entry.asset_observation else {}

    def field(name: str) -> str:
        value = metadata.get(name)
        return str(getattr(value, "value", value) or "?")

    return {
        "job": text.scrubbed(field("job_id"), secrets),
        "tenant": text.scrubbed(field("tenant_id"), secrets),
        "workflow": text.scrubbed(field("workflow_id"), secrets),
        "error": text.error_line(field("error"), secrets, {field(name) for name in IDS}),
        "link": None,
        "runless": True,
    }
