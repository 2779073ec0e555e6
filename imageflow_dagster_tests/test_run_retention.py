"""Run retention on the production instance (deploy/dagster.yaml: Postgres in a fresh database, compute logs
in moto's S3): real jobs run in-process, then partition_retention_job deletes the runs of ended jobs with
their event logs and compute logs, in bounded batches that survive a crash; jobs' rows and objects stay."""

import json
import secrets
import shutil
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import TickStatus

from imageflow_dagster.cli import main
from imageflow_dagster.local.services import create_database
from imageflow_dagster.retention import partition_retention_job
from imageflow_dagster.settings import Settings
from imageflow_dagster_tests.conftest import Pipeline
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.workflows import single_image_workflow

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
LOG_PREFIX = ".imageflow/dagster-compute-logs"  # deploy/dagster.yaml's
UNUSED_REDIS = "redis://127.0.0.1:9/0"  # the launcher is configured but nothing here launches a run

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def production(tmp_path, monkeypatch, postgres_url, settings, resources, db):
    """(Pipeline on deploy/dagster.yaml's instance, the URL of its own fresh Postgres database)."""
    database = f"retention_{secrets.token_hex(4)}"
    create_database(postgres_url, database)
    url = f"{postgres_url.rsplit('/', 1)[0]}/{database}"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    env = {"DAGSTER_HOME": str(home), "DAGSTER_POSTGRES_URL": url, "ARTIFACTS_BUCKET": settings.bucket,
           "IMAGEFLOW_CELERY_BROKER_URL": UNUSED_REDIS, "IMAGEFLOW_CELERY_BACKEND_URL": UNUSED_REDIS,
           "IMAGEFLOW_RUN_RETENTION_DAYS": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield Pipeline(instance, resources, db), url


def retain(pipeline: Pipeline, max_runs: int | None = None, raise_on_error: bool = True):
    config = {"ops": {"delete_ended_job_runs": {"config": {"max_runs": max_runs}}}} if max_runs else None
    return partition_retention_job.execute_in_process(
        instance=pipeline.instance, resources={"dynamodb": pipeline.db, "settings": settings_now()}, run_config=config,
        raise_on_error=raise_on_error,
    )


def run_job(pipeline: Pipeline, instructions: str = "Create 1 image.") -> tuple[str, str]:
    """(job id, run id) of a job run to its end."""
    job = pipeline.submit(single_image_workflow(instructions))
    return job.job_id, pipeline.run(job.job_id).run_id


def rows_of(url: str, table: str, run_ids: list[str]) -> int:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE run_id = ANY(%s)", (run_ids,))
        count = cursor.fetchone()[0]
    connection.close()
    return count


def left_of(url: str, run_ids: list[str]) -> dict[str, int]:
    return {table: rows_of(url, table, run_ids) for table in ("runs", "run_tags", "event_logs")}


def log_keys(s3_client, bucket: str, run_ids: list[str]) -> list[str]:
    keys = []
    for run_id in run_ids:
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{LOG_PREFIX}/storage/{run_id}/")
        keys += [o["Key"] for o in listed.get("Contents", [])]
    return keys


def job_objects(pipeline: Pipeline, s3_client, bucket: str, job_id: str) -> list[str]:
    prefix = f"{pipeline.job(job_id)['tenant_id']}/jobs/{job_id}/"
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_ended_jobs_lose_runs_events_and_logs_and_keep_rows_and_objects(production, s3_client, settings,
                                                                         capsys):
    pipeline, url = production
    done, done_run = run_job(pipeline)
    failed, failed_run = run_job(pipeline, "Create 2 images. [[resp-fault:500]]")
    rerun, rerun_run = run_job(pipeline)
    # The seed's rerun: the job is `processing` again, its earlier run ended.
    pipeline.db.update_item(pipeline.db.jobs_table, {"job_id": rerun}, set_values={"status": "processing"})
    assert [pipeline.job(j)["status"] for j in (done, failed)] == ["completed", "failed"]
    purged = [done_run, failed_run]
    assert left_of(url, purged)["event_logs"] > 40 and len(log_keys(s3_client, settings.bucket, purged)) >= 4
    objects = {job_id: job_objects(pipeline, s3_client, settings.bucket, job_id) for job_id in (done, failed)}
    assert objects[done]  # images and execution_steps.json

    first = retain(pipeline)
    assert first.output_for_node("delete_ended_job_runs") == 2
    assert left_of(url, purged) == {"runs": 0, "run_tags": 0, "event_logs": 0}
    assert log_keys(s3_client, settings.bucket, purged) == []
    # The job the seed set back to `processing` keeps its run, events and logs.
    assert left_of(url, [rerun_run])["runs"] == 1 and left_of(url, [rerun_run])["event_logs"] > 20
    assert log_keys(s3_client, settings.bucket, [rerun_run])
    # Rows and objects stay, and the lineage is still read from them.
    assert [pipeline.job(j)["status"] for j in (done, failed)] == ["completed", "failed"]
    assert {j: job_objects(pipeline, s3_client, settings.bucket, j) for j in (done, failed)} == objects
    assert main(["status", done, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "completed" and report["image_urls"] and report["usage_records"] >= 1

    # The retention job's own runs follow the same rule: the next execution deletes the first one.
    assert retain(pipeline).output_for_node("delete_ended_job_runs") == 1
    assert left_of(url, [first.run_id]) == {"runs": 0, "run_tags": 0, "event_logs": 0}
    assert log_keys(s3_client, settings.bucket, [first.run_id]) == []


def test_a_small_batch_takes_two_executions(production):
    pipeline, url = production
    runs = [run_job(pipeline)[1] for _ in range(3)]
    first = retain(pipeline, max_runs=2)
    assert first.output_for_node("delete_ended_job_runs") == 2
    assert left_of(url, runs)["runs"] == 1
    # The last job run and the first execution's own run.
    assert retain(pipeline, max_runs=2).output_for_node("delete_ended_job_runs") == 2
    assert left_of(url, [*runs, first.run_id]) == {"runs": 0, "run_tags": 0, "event_logs": 0}


def test_a_crash_midway_loses_nothing(production, s3_client, settings, monkeypatch):
    pipeline, url = production
    _, run_id = run_job(pipeline)

    def crash(run_id: str) -> None:
        raise RuntimeError("the retention run's process died here")

    with monkeypatch.context() as crashing:
        crashing.setattr(pipeline.instance, "delete_run", crash)
        assert not retain(pipeline, raise_on_error=False).success
    # Logs and events went first; the run is still listed, so it is found again.
    left = left_of(url, [run_id])
    assert (left["runs"], left["event_logs"]) == (1, 0)
    assert log_keys(s3_client, settings.bucket, [run_id]) == []
    # It, and the crashed execution's own run.
    assert retain(pipeline).output_for_node("delete_ended_job_runs") == 2
    assert left_of(url, [run_id])["runs"] == 0


def test_the_instance_purges_ticks_as_deploy_dagster_yaml_says(production):
    pipeline, _ = production
    assert pipeline.instance.get_tick_retention_settings(InstigatorType.SCHEDULE)[TickStatus.SUCCESS] == 90
    sensor = pipeline.instance.get_tick_retention_settings(InstigatorType.SENSOR)
    assert (sensor[TickStatus.SKIPPED], sensor[TickStatus.SUCCESS], sensor[TickStatus.FAILURE]) == (1, 14, 30)


def test_run_retention_defaults_to_the_partition_retention_and_refuses_bad_values(monkeypatch):
    monkeypatch.delenv("IMAGEFLOW_RUN_RETENTION_DAYS", raising=False)
    monkeypatch.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "30")
    assert Settings.from_env().run_retention_days == 30
    monkeypatch.setenv("IMAGEFLOW_RUN_RETENTION_DAYS", "0")
    assert Settings.from_env().run_retention_days == 0
    for bad in ("-1", "two weeks"):
        monkeypatch.setenv("IMAGEFLOW_RUN_RETENTION_DAYS", bad)
        with pytest.raises(ValueError, match="IMAGEFLOW_RUN_RETENTION_DAYS must be"):
            Settings.from_env()
