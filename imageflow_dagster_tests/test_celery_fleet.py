"""Beyond one machine, as deploy/ ships it: deploy/compose.yaml's webserver, daemon and two `imageflow worker`
services run as processes (no container engine here) with compose's commands and the environment compose gives them,
each from its own working and temp directory, on deploy/dagster.yaml with a real Postgres and Redis; asset values in
S3. 12 jobs go through the sensor; worker-1 is SIGKILLed with its whole process group (its machine gone) while runs
execute on it. Run monitoring finds the worker gone, the runs it held fail and are retried on worker-2, and every
job completes exactly once: one successful run per job, image rows = image objects, no duplicates. The webserver
shows those runs; they are rows in Postgres and nothing of them is under DAGSTER_HOME (no `storage`, no file but the
instance's)."""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from imageflow_dagster.local.services import celery_env, create_database, free_port
from imageflow_dagster.local.stack import wait_for_http
from imageflow_dagster.run_workers.celery_worker import celery_app
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests import compose
from imageflow_dagster_tests.test_deploy_instance import DEPLOY_YAML
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults, pytest.mark.timeout(420)]
JOBS = 12
IMAGES_PER_JOB = 2
BIN = Path(sys.executable).parent
# The only changes to what deploy/ ships, to keep the test short: monitoring polls every 3 s instead of 30 s and
# fails a run that has not started after 60 s instead of 120 s (a run worker-1 took but had not yet started when it
# was killed waits for that), the sensor ticks every second instead of every 15 s.
SHORTER = {
    "poll_interval_seconds: 30": "poll_interval_seconds: 3",
    "start_timeout_seconds: 120": "start_timeout_seconds: 60",
}
FASTER = {"IMAGEFLOW_SENSOR_INTERVAL_S": "1"}


@pytest.fixture
def fleet(tmp_path, monkeypatch, postgres_url, redis_url, settings, openai_server):
    """deploy/compose.yaml's webserver, daemon and two workers as processes, each with the environment compose would
    give its container, from a shell that points at the test's moto and OpenAI server. Compose's Postgres and Redis
    are the test's (a fresh database; Redis databases 2 and 3), and DAGSTER_HOME holds deploy/dagster.yaml as the
    image's does. Yields (env, spawn, home): spawn(service) starts a service from its own working and temp
    directory; every process spawned is killed with its group at the end."""
    database = f"fleet_{secrets.token_hex(4)}"
    create_database(postgres_url, database)
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance_yaml = DEPLOY_YAML.read_text()
    for shipped, shorter in SHORTER.items():
        assert instance_yaml.count(shipped) == 1
        instance_yaml = instance_yaml.replace(shipped, shorter)
    (home / "dagster.yaml").write_text(instance_yaml)
    celery = celery_env(redis_url, first_db=2)
    test_services = {
        "postgresql://dagster:dagster@postgres:5432/dagster": f"{postgres_url.rsplit('/', 1)[0]}/{database}",
        "redis://redis:6379/0": celery["IMAGEFLOW_CELERY_BROKER_URL"],
        "redis://redis:6379/1": celery["IMAGEFLOW_CELERY_BACKEND_URL"],
    }
    shell = {  # what the operator exports before `docker compose up`
        "OPENAI_API_KEY": "sk-fleet-test",
        "OPENAI_BASE_URL": openai_server.base_url,
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_REGION": settings.region,
        "ARTIFACTS_BUCKET": settings.bucket,
    }

    def service_here(name: str) -> tuple[list[str], dict[str, str]]:
        """The compose service's command and environment, its Postgres and Redis addresses the test's."""
        command, environment = compose.service(name, shell)
        assert set(test_services) <= set(environment.values()), "compose.yaml's Postgres or Redis address changed"
        return command, {key: test_services.get(value, value) for key, value in environment.items()}

    _, env = service_here("daemon")
    for key in ("DAGSTER_POSTGRES_URL", "IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL", "ARTIFACTS_BUCKET"):
        monkeypatch.setenv(key, env[key])  # this process opens the same instance
    processes: list[subprocess.Popen] = []

    def spawn(name: str, **command_changes: str) -> subprocess.Popen:
        command, environment = service_here(name)
        workdir = tmp_path / name
        (workdir / "tmp").mkdir(parents=True)
        shutil.copy(WORKSPACE, workdir)  # the image's working directory holds workspace.yaml
        process_env = {
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"),
            "DAGSTER_HOME": str(home),  # the image's ENV
            **environment,
            **FASTER,
        }
        with open(workdir / "output.log", "w") as log:
            process = subprocess.Popen(
                [command_changes.get(part, part) for part in command], cwd=workdir, env=process_env,
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
    port = free_port()
    webserver = spawn("webserver", **{"3000": str(port)})
    spawn("daemon")
    doomed = spawn("worker-1")
    spawn("worker-2")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        tasks = celery_app(env["IMAGEFLOW_CELERY_BROKER_URL"], env["IMAGEFLOW_CELERY_BACKEND_URL"])
        doomed_name = f"worker-1@{socket.gethostname()}"
        on_doomed = lambda status: _runs_on(instance, tasks, doomed_name, status)  # noqa: E731
        held = wait_until(lambda: on_doomed(dg.DagsterRunStatus.STARTED), 180, "a run executing on worker-1")
        _kill_group(doomed)
        hit = [r.dagster_run.run_id for r in instance.get_run_records(filters=dg.RunsFilter(run_ids=held))
               if r.end_time is None]
        assert hit, "every run of worker-1 ended before the kill"
        # Runs worker-1 had taken but not yet started, if the kill caught one: they fail on the start timeout.
        hit += on_doomed(dg.DagsterRunStatus.STARTING)

        status = lambda job: db.get_item(db.jobs_table, {"job_id": job.job_id})["status"]  # noqa: E731
        try:
            wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 300, f"{JOBS} jobs to end")
        except AssertionError:
            print(_fleet_state(instance, tasks, jobs, status, home.parent))
            raise
        assert [status(j) for j in jobs] == ["completed"] * JOBS
        wait_until(lambda: all(r.is_finished for r in instance.get_runs()), 60, "every run to end")

        records = instance.get_run_records(filters=dg.RunsFilter(job_name="image_generation_job"))
        runs = {r.dagster_run.run_id: r.dagster_run for r in records}
        # The runs the kill hit failed (found by run monitoring) and a retry of each succeeded on worker-2.
        print(f"runs the kill hit: {len(hit)}")
        for run_id in hit:
            assert runs[run_id].status == dg.DagsterRunStatus.FAILURE
            [retry] = [r for r in runs.values() if r.tags.get("dagster/parent_run_id") == run_id]
            assert retry.status == dg.DagsterRunStatus.SUCCESS  # on worker-2: worker-1 is gone
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

    # The operator sees the same runs in the webserver compose starts.
    assert wait_for_http(f"http://127.0.0.1:{port}/server_info", 60), "the webserver did not answer"
    assert _runs_in_webserver(port) == {run_id: run.status.value for run_id, run in runs.items()}
    assert webserver.poll() is None

    # The runs are rows in the fleet's Postgres database; DAGSTER_HOME holds only the instance file.
    with psycopg2.connect(env["DAGSTER_POSTGRES_URL"]) as connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT run_id, status FROM runs WHERE pipeline_name = 'image_generation_job'")
            assert dict(cursor.fetchall()) == {run_id: run.status.value for run_id, run in runs.items()}
    connection.close()
    # (the daemon leaves two empty folders there: `logs` and `.logs_queue`)
    assert not (home / "storage").exists()
    assert [str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()] == ["dagster.yaml"]


def _fleet_state(instance, tasks, jobs, status, workdirs: Path) -> str:
    """What a timed-out wait leaves to read: each job's status, each run's status, worker and parent, and the
    tail of every service's output."""
    lines = [f"job {j.job_id}: {status(j)}" for j in jobs]
    for run in instance.get_runs():
        lines.append(f"run {run.run_id} {run.status.value} partition={run.tags.get('dagster/partition')} "
                     f"worker={_celery_worker(tasks, run)} parent={run.tags.get('dagster/parent_run_id')}")
    for log in sorted(workdirs.glob("*/output.log")):
        lines += [f"--- {log.parent.name}", *log.read_text(errors="replace").splitlines()[-40:]]
    return "\n".join(lines)


def _runs_in_webserver(port: int) -> dict[str, str]:
    query = '{ runsOrError(filter: {pipelineName: "image_generation_job"}) { ... on Runs { results { runId status } } } }'
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        runs = json.loads(response.read())["data"]["runsOrError"]["results"]
    return {run["runId"]: run["status"] for run in runs}


def _runs_on(instance: dg.DagsterInstance, tasks, worker: str, status: dg.DagsterRunStatus) -> list[str]:
    """The ids of the runs in `status` whose Celery task `worker` took."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=[status]))
    return [run.run_id for run in runs if _celery_worker(tasks, run) == worker]


def _celery_worker(tasks, run: dg.DagsterRun) -> str | None:
    """The Celery worker that took the run's task, as Celery recorded it when the task started."""
    task_id = run.tags.get("dagster-celery/task_id")
    info = tasks.AsyncResult(task_id).info if task_id else None
    return info.get("hostname") if isinstance(info, dict) else None


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

