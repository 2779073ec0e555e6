"""Retention removes partitions of long-ended jobs, page after page, and keeps every row. Dates are derived from now."""

import time

import dagster as dg

from imageflow_dagster.ids import iso_from_epoch
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.retention import CHUNK, partition_retention_job
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.test_sensor import WORKFLOW

DAY_S = 86400


def days_ago(days: float) -> str:
    return iso_from_epoch(time.time() - days * DAY_S)


def run_retention(instance, db) -> int:
    resources = {"dynamodb": db, "settings": settings_now()}
    result = partition_retention_job.execute_in_process(instance=instance, resources=resources)
    assert result.success
    return result.output_for_node("remove_ended_job_partitions")


def test_old_ended_jobs_lose_their_partition_and_keep_their_rows(pipeline, db, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "14")
    old_done, old_failed, recent_done, running = (pipeline.submit(WORKFLOW).job_id for _ in range(4))
    ended = {
        old_done: {"status": "completed", "completed_at": days_ago(15)},  # past the 14 days
        old_failed: {"status": "failed", "failed_at": days_ago(40)},
        recent_done: {"status": "completed", "completed_at": days_ago(13)},  # within them
    }
    for job_id, values in ended.items():
        db.update_item(db.jobs_table, {"job_id": job_id}, set_values=values)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(jobs_partitions.name, [old_done, old_failed, recent_done, running, "job_gone"])
        assert run_retention(instance, db) == 3  # the two old ones and the one without a row
        assert sorted(instance.get_dynamic_partitions(jobs_partitions.name)) == sorted([recent_done, running])
    assert pipeline.job(old_done)["status"] == "completed" and pipeline.job(old_failed)["status"] == "failed"


def test_partitions_are_removed_across_pages_while_recent_ones_stay(db, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "14")
    # Groups of ten, in partition order: eight expired (five completed 30 days ago, two failed 15 days ago, one
    # whose row is gone), one completed 2 days ago and one still processing: kept ones on every page.
    groups = 23  # 230 partitions: three pages of CHUNK (100)
    rows, removed, kept, order = [], [], [], []
    for g in range(groups):
        for k in range(10):
            job_id = f"job_page_{g:02d}_{k}"
            order.append(job_id)
            if k < 5:
                rows.append({"job_id": job_id, "status": "completed", "completed_at": days_ago(30)})
            elif k < 7:
                rows.append({"job_id": job_id, "status": "failed", "failed_at": days_ago(15)})
            elif k == 8:
                rows.append({"job_id": job_id, "status": "completed", "completed_at": days_ago(2)})
            elif k == 9:
                rows.append({"job_id": job_id, "status": "processing", "updated_at": days_ago(30)})
            (kept if k >= 8 else removed).append(job_id)
    for start in range(0, len(rows), 25):
        db.get_client().batch_write_item(
            RequestItems={db.jobs_table: [{"PutRequest": {"Item": _item(r)}} for r in rows[start : start + 25]]}
        )
    assert len(order) > 2 * CHUNK and len(removed) > CHUNK
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(jobs_partitions.name, order)
        assert run_retention(instance, db) == len(removed) == 184
        assert instance.get_dynamic_partitions(jobs_partitions.name) == kept
        assert run_retention(instance, db) == 0  # nothing left to remove
    assert _job_rows(db) == len(rows)  # every row stays


def _item(row: dict) -> dict:
    return {name: {"S": value} for name, value in row.items()}


def _job_rows(db) -> int:
    count, kwargs = 0, {"TableName": db.jobs_table, "Select": "COUNT"}
    while True:
        page = db.get_client().scan(**kwargs)
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
