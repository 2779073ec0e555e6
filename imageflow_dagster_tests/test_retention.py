"""Retention removes partitions of long-ended jobs and keeps every row."""

import dagster as dg

from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.retention import partition_retention_job
from imageflow_dagster_tests.test_sensor import WORKFLOW


def test_old_ended_jobs_lose_their_partition_and_keep_their_rows(pipeline, db, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "14")
    old_done = pipeline.submit(WORKFLOW).job_id
    old_failed = pipeline.submit(WORKFLOW).job_id
    recent_done = pipeline.submit(WORKFLOW).job_id
    running = pipeline.submit(WORKFLOW).job_id
    db.update_item(db.jobs_table, {"job_id": old_done}, set_values={"status": "completed", "completed_at": "2026-01-01T00:00:00.000Z"})
    db.update_item(db.jobs_table, {"job_id": old_failed}, set_values={"status": "failed", "failed_at": "2026-02-01T00:00:00.000Z"})
    db.update_item(db.jobs_table, {"job_id": recent_done}, set_values={"status": "completed", "completed_at": "2099-01-01T00:00:00.000Z"})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(jobs_partitions.name, [old_done, old_failed, recent_done, running, "job_gone"])
        result = partition_retention_job.execute_in_process(instance=instance, resources={"dynamodb": db})
        assert result.success and result.output_for_node("remove_ended_job_partitions") == 3
        assert sorted(instance.get_dynamic_partitions(jobs_partitions.name)) == sorted([recent_done, running])
    assert pipeline.job(old_done)["status"] == "completed"  # the row stays
