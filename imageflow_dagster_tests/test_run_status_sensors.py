"""The run-status sensors keep up with a burst: 50 runs of 50 claimed jobs end (failed, or canceled) in
Dagster's run storage, and the sensor ends all 50 jobs `failed` in one tick, not in the ten that Dagster's default
of five runs per tick takes (five minutes at its default interval of 30 s)."""

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from imageflow_dagster.flow.job_store import CLAIM_ID, claim_job
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.run_tags import CLAIM_TAG
from imageflow_dagster.definitions import defs
from imageflow_dagster_tests.test_sensor import WORKFLOW

BURST = 50
job_run_failure_sensor = defs.resolve_sensor_def("job_run_failure_sensor")
job_run_canceled_sensor = defs.resolve_sensor_def("job_run_canceled_sensor")
MAX_TICKS = 20  # a bound for the loop, far above what the assertion allows


def _end_failed(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.report_run_failed(run, message="run worker process exited unexpectedly")


def _end_canceled(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.report_run_canceled(run, message="canceled by an operator")


@pytest.mark.parametrize(
    "sensor, end_run, error_type",
    [(job_run_failure_sensor, _end_failed, "RunFailed"), (job_run_canceled_sensor, _end_canceled, "RunCanceled")],
    ids=["failed", "canceled"],
)
def test_a_burst_of_ended_runs_ends_every_job_within_a_minute(
    pipeline, db, tmp_path, sensor, end_run, error_type
):
    jobs = [pipeline.submit(WORKFLOW).job_id for _ in range(BURST)]
    with dg.instance_for_test(overrides=_one_event_log(tmp_path)) as instance:
        cursor = _tick(sensor, instance, db, None)  # the sensor was running before the burst: its cursor is set
        for number, job_id in enumerate(jobs):
            claim = f"claim_{number}"
            assert claim_job(db, job_id, claim, ("processing",), 3600)
            run = create_run_for_test(
                instance,
                job_name=image_generation_job.name,
                status=dg.DagsterRunStatus.STARTED,
                tags={CLAIM_TAG: claim, "dagster/partition": job_id},
            )
            end_run(instance, run)
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=image_generation_job.name))
        assert len(runs) == BURST and all(run.is_finished for run in runs)  # ended in Dagster's run storage

        ticks = 0
        while ticks < MAX_TICKS and not all(pipeline.job(j)["status"] == "failed" for j in jobs):
            cursor = _tick(sensor, instance, db, cursor)
            ticks += 1

    rows = [pipeline.job(j) for j in jobs]
    assert [r["status"] for r in rows] == ["failed"] * BURST
    assert {r["error_type"] for r in rows} == {error_type} and not any(CLAIM_ID in r for r in rows)
    assert ticks == 1, f"{ticks} ticks to end {BURST} jobs"
    assert ticks * sensor.minimum_interval_seconds <= 60


def _one_event_log(base_dir) -> dict:
    """One event log for all runs, as production's Postgres keeps it (SQLite's default opens a file per run)."""
    storage = {"module": "dagster._core.storage.event_log", "class": "ConsolidatedSqliteEventLogStorage"}
    return {"event_log_storage": {**storage, "config": {"base_dir": str(base_dir)}}}


def _tick(sensor, instance: dg.DagsterInstance, db, cursor: str | None) -> str | None:
    """One evaluation, as the daemon makes it every IMAGEFLOW_RUN_STATUS_SENSOR_INTERVAL_S; returns the new
    cursor."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"dynamodb": db})
    return sensor.evaluate_tick(context).cursor
