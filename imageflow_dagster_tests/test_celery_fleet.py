"""Beyond one machine: deploy/dagster.yaml on a real Postgres and Redis, `dagster-daemon` and two `imageflow worker`
processes (each from its own working and temp directory), asset values in S3. 12 jobs go through the sensor; one
worker is SIGKILLed with its whole process group (its machine gone) while runs execute on it. Run monitoring finds
the worker gone, the runs it held fail and are retried on the other worker, and every job completes exactly once:
one successful run per job, image rows = image objects, no duplicates. The runs are rows in Postgres and nothing
of them is under DAGSTER_HOME (no `storage`, no file but the instance's)."""

import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from imageflow_dagster.run_workers.celery_worker import celery_app
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_deploy_instance import DEPLOY_YAML
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]
JOBS = 12
IMAGES_PER_JOB = 2
BIN = Path(sys.executable).parent
# The only change to the shipped file: monitoring polls every 3 s instead of 30 s, to keep the test short.
POLL = ("poll_interval_seconds: 30", "poll_interval_seconds: 3")


@pytest.fixture
def fleet(tmp_path, monkeypatch, postgres_url, redis_url, settings, openai_server):
    """Environment of every fleet process: its own Postgres database, Redis databases 2 and 3, the test's moto and
    OpenAI server. Yields (env, spawn, home); every process spawned is killed with its group at the end."""
    database = f"fleet_{secrets.token_hex(4)}"
    _create_database(postgres_url, database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shipped = DEPLOY_YAML.read_text()
    assert shipped.count(POLL[0]) == 1
    (home / "dagster.yaml").write_text(shipped.replace(*POLL))
    redis_base = redis_url.rsplit("/", 1)[0]
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": f"{postgres_url.rsplit('/', 1)[0]}/{database}".replace(
            "postgresql://", "postgresql+psycopg2://", 1
        ),
        "IMAGEFLOW_CELERY_BROKER_URL": f"{redis_base}/2",
        "IMAGEFLOW_CELERY_BACKEND_URL": f"{redis_base}/3",
        "ARTIFACTS_BUCKET": settings.bucket,
        "IMAGEFLOW_IO_MANAGER": "s3",
        "IMAGEFLOW_SENSOR_INTERVAL_S": "1",
        "OPENAI_BASE_URL": openai_server.base_url,
        "OPENAI_API_KEY": "sk-fleet-test",
    }
    for key in ("DAGSTER_POSTGRES_URL", "IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL", "ARTIFACTS_BUCKET"):
        monkeypatch.setenv(key, env[key])  # this process opens the same instance
    processes: list[subprocess.Popen] = []

    def spawn(name: str, command: list[str]) -> subprocess.Popen:
        workdir = tmp_path / name
        (workdir / "tmp").mkdir(parents=True)
        with open(workdir / "output.log", "w") as log:
            process = subprocess.Popen(
                command, cwd=workdir, env={**env, "TMPDIR": str(workdir / "tmp")},
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        processes.append(process)
        return process

    yield env, spawn, home
    for process in processes:
        _kill_group(process)


def test_a_worker_lost_mid_run_loses_no_job_and_duplicates_nothing(fleet, db, settings, s3_client, openai_server):
    env, spawn, home = fleet
    openai_server.configure(image_latency_s=2.0)  # runs stay in flight long enough to be hit
    jobs = [
        submit_job(db, workflow=single_image_workflow(f"Create {IMAGES_PER_JOB} images for client {i}."),
                   answers={"name": "Ada"})
        for i in range(JOBS)
    ]
    spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
    doomed = spawn("worker-a", [str(BIN / "imageflow"), "worker", "--concurrency", "2", "--name", "a@fleet"])
    spawn("worker-b", [str(BIN / "imageflow"), "worker", "--concurrency", "2", "--name", "b@fleet"])

    with dg.DagsterInstance.from_config(str(home)) as instance:
        tasks = celery_app(env["IMAGEFLOW_CELERY_BROKER_URL"], env["IMAGEFLOW_CELERY_BACKEND_URL"])
        on_worker_a = lambda: [  # noqa: E731
            run.run_id for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            if _celery_worker(tasks, run) == "a@fleet"
        ]
        held = wait_until(on_worker_a, 180, "a run executing on worker a")
        _kill_group(doomed)
        hit = [r.dagster_run.run_id for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=held))
               if r.end_time is None]
        assert hit, "every run of worker a ended before the kill"

        status = lambda job: db.get_item(db.jobs_table, {"job_id": job.job_id})["status"]  # noqa: E731
        wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 300, f"{JOBS} jobs to end")
        assert [status(j) for j in jobs] == ["completed"] * JOBS
        wait_until(lambda: all(r.is_finished for r in instance.get_runs()), 60, "every run to end")

        records = instance.get_run_records(filters=dg.RunsFilter(job_name="image_generation_job"))
        runs = {r.dagster_run.run_id: r.dagster_run for r in records}
        # The runs the kill hit failed (found by run monitoring) and a retry of each succeeded on worker b.
        for run_id in hit:
            assert runs[run_id].status == dg.DagsterRunStatus.FAILURE
            [retry] = [r for r in runs.values() if r.tags.get("dagster/parent_run_id") == run_id]
            assert retry.status == dg.DagsterRunStatus.SUCCESS  # on worker b: worker a is gone
        succeeded = Counter(r.tags["dagster/partition"] for r in runs.values() if r.status == dg.DagsterRunStatus.SUCCESS)
        assert succeeded == Counter(j.job_id for j in jobs)

    # Exactly once in S3 and DynamoDB: as many image objects as image rows, IMAGES_PER_JOB per job.
    image_rows = []
    for job in jobs:
        rows, _ = db.query_index(db.artifacts_table, "gsi_job_id", "#j = :j", {"#j": "job_id"}, {":j": job.job_id}, limit=100)
        images = [r["s3_key"] for r in rows if r["artifact_type"] == "image"]
        assert len(images) == len(set(images)) == IMAGES_PER_JOB
        image_rows += images
    objects = [o["Key"] for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
               for o in page.get("Contents", []) if o["Key"].endswith(".png")]
    assert sorted(objects) == sorted(image_rows)

    # The runs are rows in the fleet's Postgres database; DAGSTER_HOME holds only the instance file.
    with psycopg2.connect(env["DAGSTER_POSTGRES_URL"].replace("+psycopg2", "")) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_id, status FROM runs WHERE pipeline_name = 'image_generation_job'")
            assert dict(cursor.fetchall()) == {run_id: run.status.value for run_id, run in runs.items()}
    connection.close()
    # (the daemon leaves two empty folders there: `logs` and `.logs_queue`)
    assert not (home / "storage").exists()
    assert [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()] == ["dagster.yaml"]


def _celery_worker(tasks, run: dg.DagsterRun) -> str | None:
    """The Celery worker that took the run's task, as Celery recorded it when the task started."""
    task_id = run.tags.get("dagster-celery/task_id")
    info = tasks.AsyncResult(task_id).info if task_id else None
    return info.get("hostname") if isinstance(info, dict) else None


def _create_database(postgres_url: str, name: str) -> None:
    connection = psycopg2.connect(postgres_url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

