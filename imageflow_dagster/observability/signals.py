"""What imageflow measures and where: each function is the one call its place makes, and does nothing (no read,
no line) unless IMAGEFLOW_METRICS=emf.

- The jobs sensor, once per tick (sensors.py): JobsWaiting, RunsQueued, RunsRequested.
- Every OpenAI call, successful or not (resources/openai_retry.py, CallPolicy.run): RateLimitWaitSeconds and
  RateLimited429s, per rate budget (`images`, `tokens`, or `images:<model>` under a per-model limit).
- Every job that ends `failed`: a bad record the sensor fails (sensors.py), and every failed or canceled run the
  run-status sensors see that Dagster will not retry (sensors.py), counted when the job's row says `failed`
  (the asset code's write or the sensor's own), per ErrorType as the row gives it.
"""

from typing import Any, Protocol

import dagster as dg

from imageflow_dagster.observability import metrics

NOT_YET_STARTED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED]
PARTITION_TAG = "dagster/partition"


class JobRowReader(Protocol):
    """What run_of_job_failed reads the job's row with: the DynamoDBResource. Named by its shape, because
    observability sits below resources (which call into it) and imports none of them."""

    jobs_table: str

    def get_item(self, table: str, key: dict[str, Any], consistent: bool = True) -> dict[str, Any] | None: ...


def sensor_tick(instance: dg.DagsterInstance, admission, run_requests: list[dg.RunRequest]) -> None:
    """`admission` (flow/admission.py) knows the jobs the tick left waiting and, when it read run storage, the
    queued runs; a tick that had no job to claim did not read it, and the count is made here."""
    if not metrics.enabled():
        return
    queued = admission.runs_queued
    if queued is None:
        queued = instance.get_runs_count(dg.RunsFilter(statuses=NOT_YET_STARTED)) + len(run_requests)
    metrics.emit({"JobsWaiting": admission.held, "RunsQueued": queued, "RunsRequested": len(run_requests)})


def openai_call(budget_key: str, waited_s: float, rate_limited: int) -> None:
    metrics.emit(
        {"RateLimitWaitSeconds": round(waited_s, 3), "RateLimited429s": rate_limited}, {"Budget": budget_key}
    )


def job_failed(job_id: str, error_type: str | None, run_id: str | None = None, tenant_id: str | None = None) -> None:
    metrics.emit(
        {"JobsFailed": 1}, {"ErrorType": error_type or "unknown"}, job_id=job_id, run_id=run_id, tenant_id=tenant_id
    )


def run_of_job_failed(db: JobRowReader, run: dg.DagsterRun) -> None:
    """A failed or canceled run that will not be retried: its job counts when its row ended `failed`."""
    job_id = run.tags.get(PARTITION_TAG)
    if not job_id or not metrics.enabled():
        return
    row = db.get_item(db.jobs_table, {"job_id": job_id}) or {}
    if row.get("status") == "failed":
        job_failed(job_id, row.get("error_type"), run.run_id, row.get("tenant_id"))
