"""The DynamoDB sensor against moto: claims, pages, bad records, reruns, limits, claim statuses, the scan fallback,
recovery, re-added partitions, run failures (the `dagster/will_retry` cases are in test_ownership.py)."""

import time

import dagster as dg
import pytest

from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.job_store import CLAIM_ID, mark_completed
from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.retention import partition_retention_job
from imageflow_dagster.run_tags import CLAIM_TAG
from imageflow_dagster_tests.conftest import sense_run_failure, with_changes
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.workflows import single_image_workflow

WORKFLOW = single_image_workflow("Create 1 image.")
processing_jobs_sensor = defs.resolve_sensor_def("processing_jobs_sensor")


@pytest.fixture
def sensor_instance():
    with dg.instance_for_test() as instance:
        yield instance


def tick(instance, db, cursor=None) -> dg.SensorResult:
    """One evaluation with the settings the environment holds now, as a code location loaded now would have."""
    resources = {"dynamodb": db, "settings": settings_now()}
    context = dg.build_sensor_context(
        instance=instance, instance_ref=instance.get_ref(), definitions=defs, resources=resources, cursor=cursor
    )
    return processing_jobs_sensor.evaluate_tick(context)


def submit(pipeline, n: int, **kwargs) -> list[str]:
    return [pipeline.submit(WORKFLOW, **kwargs).job_id for _ in range(n)]


def requested(result) -> list[str]:
    return [r.partition_key for r in result.run_requests]


def write_created_at(db, oldest_first: list[str]) -> list[str]:
    """Gives the jobs creation times one second apart, an hour ago, in the given order; returns the times."""
    start = time.time() - 3600
    times = [iso_from_epoch(start + k) for k in range(len(oldest_first))]
    for job_id, created_at in zip(oldest_first, times):
        db.update_item(db.jobs_table, {"job_id": job_id}, set_values={"created_at": created_at})
    return times


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
    monkeypatch.setenv("IMAGEFLOW_SENSOR_MAX_ITEMS_PER_TICK", "5")
    # One tenant's 12 jobs, five a tick: the tenant's share and the queued-runs bound are test_fair_share.py's.
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "12")
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "12")
    jobs = submit(pipeline, 12)
    write_created_at(db, jobs)  # jobs[0] oldest ... jobs[11] newest
    ticks, cursor = [], None
    for _ in range(4):
        result = tick(sensor_instance, db, cursor)
        ticks.append(requested(result))
        cursor = result.cursor
    # five jobs read per tick, oldest first; the fourth tick starts a new pass and finds every job claimed
    assert ticks == [jobs[0:5], jobs[5:10], jobs[10:12], []]


def test_per_tick_run_limit_continues_in_creation_order(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_SENSOR_MAX_RUNS_PER_TICK", "3")
    jobs = submit(pipeline, 7)
    # Creation times written here, in an order unlike the submission order: the expected order is theirs.
    oldest_first = [jobs[4], jobs[0], jobs[6], jobs[2], jobs[5], jobs[1], jobs[3]]
    created = write_created_at(db, oldest_first)
    assert [pipeline.job(j)["created_at"] for j in oldest_first] == sorted(created)
    batches, cursor = [], None
    for _ in range(3):
        result = tick(sensor_instance, db, cursor)
        batches.append(requested(result))
        cursor = result.cursor
    assert batches == [  # no job skipped, none waits for a wrap-around
        [jobs[4], jobs[0], jobs[6]],
        [jobs[2], jobs[5], jobs[1]],
        [jobs[3]],
    ]


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


def test_claim_statuses_setting_claims_the_listed_statuses_only(pipeline, db, sensor_instance, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_CLAIM_STATUSES", "queued, retrying")
    listed = submit(pipeline, 2, status="queued") + submit(pipeline, 1, status="retrying")
    unlisted = submit(pipeline, 1) + submit(pipeline, 1, status="pending")  # `processing`, the default, is not listed
    result = tick(sensor_instance, db)
    assert sorted(requested(result)) == sorted(listed)
    for request in result.run_requests:
        assert pipeline.job(request.partition_key)[CLAIM_ID] == request.tags[CLAIM_TAG]
    assert [CLAIM_ID in pipeline.job(j) for j in unlisted] == [False, False]
    assert tick(sensor_instance, db, result.cursor).run_requests == []


def test_scan_fallback_finds_jobs_in_a_table_without_the_status_index(pipeline, db, sensor_instance, monkeypatch):
    db.get_client().update_table(
        TableName=db.jobs_table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "gsi_status_created"}}]
    )
    jobs = submit(pipeline, 3)
    pipeline.submit(WORKFLOW, status="pending")
    with pytest.raises(Exception, match="Invalid index: gsi_status_created"):  # control: the index is really gone
        tick(sensor_instance, db)
    monkeypatch.setenv("IMAGEFLOW_JOBS_STATUS_INDEX", "")  # set but empty: this table has no status index
    result = tick(sensor_instance, db)
    assert sorted(requested(result)) == sorted(jobs)
    assert tick(sensor_instance, db, result.cursor).run_requests == []


def test_sensor_re_adds_the_partition_retention_removed(pipeline, db, sensor_instance):
    (job_id,) = submit(pipeline, 1)
    first = tick(sensor_instance, db)
    [add] = first.dynamic_partitions_requests
    sensor_instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))  # as the daemon does
    assert mark_completed(db, job_id, {}, claim_id=first.run_requests[0].tags[CLAIM_TAG])
    long_ago = iso_from_epoch(time.time() - 30 * 86400)  # past the default retention of 14 days
    db.update_item(db.jobs_table, {"job_id": job_id}, set_values={"completed_at": long_ago})
    retention = partition_retention_job.execute_in_process(
        instance=sensor_instance, resources={"dynamodb": db, "settings": settings_now()}
    )
    assert retention.output_for_node("remove_ended_job_partitions") == 1
    assert not sensor_instance.has_dynamic_partition(jobs_partitions.name, job_id)
    db.update_item(db.jobs_table, {"job_id": job_id}, set_values={"status": "processing"})  # the seed API's rerun
    again = tick(sensor_instance, db, first.cursor)
    assert requested(again) == [job_id]
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in again.dynamic_partitions_requests] == [
        (jobs_partitions.name, [job_id])
    ]


def test_claim_without_run_is_requested_again_after_grace(pipeline, db, sensor_instance, monkeypatch):
    (job_id,) = submit(pipeline, 1)
    first = tick(sensor_instance, db)  # claimed; pretend the daemon died before submitting the run
    assert tick(sensor_instance, db, first.cursor).run_requests == []  # within the grace period
    monkeypatch.setenv("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", "-1")
    again = tick(sensor_instance, db, first.cursor)
    assert requested(again) == [job_id] and again.run_requests[0].run_key == first.run_requests[0].run_key


def test_run_failure_sensor_keeps_the_asset_codes_message(pipeline, db, resources):
    resources["openai"] = with_changes(resources["openai"], base_url=None)
    job = pipeline.submit(WORKFLOW)
    result = pipeline.run(job.job_id)
    sense_run_failure(pipeline, result)
    assert pipeline.job(job.job_id)["error_type"] == "OpenAINotConfigured"
