"""The DynamoDB sensor against moto: claims, pages, bad records, reruns, limits, recovery, run failures."""

import dagster as dg
import pytest
from dagster._core.events import DagsterEventType

from imageflow_dagster import sensors
from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.job_queue import QueueCursor, waiting_jobs
from imageflow_dagster.flow.job_store import CLAIM_ID, CLAIM_TAG, mark_completed
from imageflow_dagster.sensors import job_run_failure_sensor, processing_jobs_sensor
from imageflow_dagster_tests.conftest import with_changes
from imageflow_dagster_tests.workflows import single_image_workflow

WORKFLOW = single_image_workflow("Create 1 image.")


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, db, cursor=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources={"dynamodb": db}, cursor=cursor
    )
    return processing_jobs_sensor.evaluate_tick(context)


def submit(pipeline, n: int, **kwargs) -> list[str]:
    return [pipeline.submit(WORKFLOW, **kwargs).job_id for _ in range(n)]


def requested(result) -> list[str]:
    return [r.partition_key for r in result.run_requests]


def test_new_jobs_are_claimed_and_get_one_run_each(pipeline, db, sensor_instance):
    jobs = submit(pipeline, 3)
    pipeline.submit(WORKFLOW, status="pending")  # the seed API's initial status is not ours to pick up
    result = tick(sensor_instance, db)
    assert sorted(requested(result)) == sorted(jobs)
    assert sorted(result.dynamic_partitions_requests[0].partition_keys) == sorted(jobs)
    for request in result.run_requests:
        row = pipeline.job(request.partition_key)
        assert row[CLAIM_ID] == request.tags[CLAIM_TAG]
        assert request.run_key == f"{request.partition_key}:{row[CLAIM_ID]}"
        assert row["status"] == "processing"


def test_claimed_jobs_get_no_second_run(pipeline, db, sensor_instance):
    submit(pipeline, 2)
    first = tick(sensor_instance, db)
    second = tick(sensor_instance, db, first.cursor)
    third = tick(sensor_instance, db, second.cursor)
    assert len(first.run_requests) == 2 and second.run_requests == [] and third.run_requests == []


def test_many_jobs_drain_over_ticks(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setattr(sensors, "MAX_ITEMS_PER_TICK", 5)
    jobs = submit(pipeline, 12)
    seen, cursor = [], None
    for _ in range(3):
        result = tick(sensor_instance, db, cursor)
        seen += requested(result)
        cursor = result.cursor
    assert sorted(seen) == sorted(jobs) and len(seen) == 12


def test_per_tick_run_limit_continues_in_creation_order(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_SENSOR_MAX_RUNS_PER_TICK", "3")
    submit(pipeline, 7)
    index_order = [j["job_id"] for j in waiting_jobs(db, "processing", "gsi_status_created", QueueCursor(), 100).jobs]
    jobs = index_order  # oldest first, as the status index returns them
    batches, cursor = [], None
    for _ in range(3):
        result = tick(sensor_instance, db, cursor)
        batches.append(requested(result))
        cursor = result.cursor
    assert batches == [jobs[0:3], jobs[3:6], jobs[6:7]]  # no job skipped, none waits for a wrap-around


def test_bad_record_among_good_ones_fails_alone(pipeline, db, sensor_instance):
    good = submit(pipeline, 2)
    bad = pipeline.submit(WORKFLOW)
    db.get_client().delete_item(TableName=db.workflows_table, Key={"workflow_id": {"S": bad.workflow_id}})
    invalid = pipeline.submit(WORKFLOW)
    db.update_item(db.jobs_table, {"job_id": invalid.job_id}, set_values={"tenant_id": "../escape"})
    result = tick(sensor_instance, db)
    assert sorted(requested(result)) == sorted(good)
    row = pipeline.job(bad.job_id)
    assert row["status"] == "failed" and row["error_message"] == f"Workflow {bad.workflow_id} not found"
    assert CLAIM_ID not in row
    assert pipeline.job(invalid.job_id)["error_message"].startswith("Invalid tenant_id")


def test_rerun_flip_gets_exactly_one_new_run(pipeline, db, sensor_instance):
    (job_id,) = submit(pipeline, 1)
    first = tick(sensor_instance, db)
    claim = first.run_requests[0].tags[CLAIM_TAG]
    assert mark_completed(db, job_id, {}, claim_id=claim)
    assert tick(sensor_instance, db, first.cursor).run_requests == []
    db.update_item(db.jobs_table, {"job_id": job_id}, set_values={"status": "processing"})  # the seed API's rerun
    again = tick(sensor_instance, db, first.cursor)
    assert requested(again) == [job_id]
    assert again.run_requests[0].run_key != first.run_requests[0].run_key
    assert tick(sensor_instance, db, again.cursor).run_requests == []


def test_scan_fallback_without_status_index(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_JOBS_STATUS_INDEX", "")
    jobs = submit(pipeline, 2)
    assert sorted(requested(tick(sensor_instance, db))) == sorted(jobs)


def test_claim_without_run_is_requested_again_after_grace(pipeline, db, sensor_instance, monkeypatch):
    (job_id,) = submit(pipeline, 1)
    first = tick(sensor_instance, db)  # claimed; pretend the daemon died before submitting the run
    assert tick(sensor_instance, db, first.cursor).run_requests == []  # within the grace period
    monkeypatch.setattr(sensors, "UNLAUNCHED_GRACE_S", -1)
    again = tick(sensor_instance, db, first.cursor)
    assert requested(again) == [job_id] and again.run_requests[0].run_key == first.run_requests[0].run_key


def test_run_failure_sensor_fails_a_job_left_processing(pipeline, db, resources):
    resources["openai"] = with_changes(resources["openai"], base_url=None, api_key=None)
    job = pipeline.submit(WORKFLOW)
    result = pipeline.run(job.job_id)
    assert not result.success
    run = result.dagster_run
    # As if the worker died before the asset code could record anything: the job is still processing.
    db.update_item(db.jobs_table, {"job_id": job.job_id}, set_values={"status": "processing", CLAIM_ID: run.run_id})
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=job_run_failure_sensor.name,
        dagster_event=failure,
        dagster_instance=pipeline.instance,
        dagster_run=run,
        resources={"dynamodb": db},
    ).for_run_failure()
    job_run_failure_sensor(context)
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed" and row["error_type"] == "RunFailed"
    assert row["error_message"].startswith(f"Run {run.run_id} failed:")


def test_run_failure_sensor_keeps_the_asset_codes_message(pipeline, db, resources):
    resources["openai"] = with_changes(resources["openai"], base_url=None, api_key=None)
    job = pipeline.submit(WORKFLOW)
    result = pipeline.run(job.job_id)
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=job_run_failure_sensor.name,
        dagster_event=failure,
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        resources={"dynamodb": db},
    ).for_run_failure()
    job_run_failure_sensor(context)
    assert pipeline.job(job.job_id)["error_type"] == "OpenAINotConfigured"
