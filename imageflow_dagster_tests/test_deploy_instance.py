"""deploy/dagster.yaml, the production instance, loaded as shipped against a real Postgres and Redis
(imageflow_dagster_tests/services.py) and moto's S3: its storage, launcher and compute logs are the ones it
names, and an imageflow job run on it leaves its run in Postgres and its logs in S3, nothing on local disk.

The job's run executes in this process (`materialize`), not in a Celery worker: a worker and its command are
deploy pieces that come later. The launcher is still exercised for real: it puts a run's task on the test
Redis, and run monitoring's health check reads the task's state back from the test result backend.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import redis
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext, WorkerStatus
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
from dagster._core.test_utils import create_run_for_test
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from imageflow_dagster.assets import all_assets
from imageflow_dagster.local.services import celery_env
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.conftest import DEFAULT_ANSWERS
from imageflow_dagster_tests.workflows import single_image_workflow

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
LOG_PREFIX = ".imageflow/dagster-compute-logs"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def production_instance(tmp_path, monkeypatch, postgres_url, redis_url, settings):
    """deploy/dagster.yaml, unchanged, in a fresh DAGSTER_HOME, with the env vars it reads pointing at the
    test services. Broker and result backend get different Redis databases, to show each variable is read."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": postgres_url,  # bare postgresql://, as Dagster's docs and RDS write it
        **celery_env(redis_url),
        "ARTIFACTS_BUCKET": settings.bucket,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance, home, env


def test_deploy_instance_runs_a_job_on_postgres_with_logs_in_s3(
    production_instance, postgres_url, db, settings, resources, s3_client, moto_endpoint
):
    instance, home, env = production_instance

    # Storage: every store is dagster-postgres's, on the test cluster, through the psycopg2 driver.
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert instance.run_storage.postgres_url == postgres_url.replace("postgresql://", "postgresql+psycopg2://")

    # Launcher: dagster-celery's, with its broker and result backend on the test Redis.
    launcher = instance.run_launcher
    assert isinstance(launcher, CeleryRunLauncher)
    assert (launcher.broker, launcher.backend) == (env["IMAGEFLOW_CELERY_BROKER_URL"],
                                                   env["IMAGEFLOW_CELERY_BACKEND_URL"])
    _launch_reaches_redis(instance, env)

    # Compute logs: S3, the artifacts bucket, the private prefix, through AWS_ENDPOINT_URL (moto here).
    logs = instance.compute_log_manager
    assert isinstance(logs, S3ComputeLogManager)
    assert (logs._s3_bucket, logs._s3_prefix) == (settings.bucket, LOG_PREFIX)
    assert logs._s3_session.meta.endpoint_url == moto_endpoint

    # Queue, pools, monitoring and retries as the file says.
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
    assert instance.run_monitoring_enabled
    assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
    assert instance.run_retries_retry_on_asset_or_op_failure is False

    # One imageflow job, run on this instance as a worker would run it.
    job = submit_job(db, workflow=single_image_workflow("A lighthouse at dawn."), answers=DEFAULT_ANSWERS)
    instance.add_dynamic_partitions(jobs_partitions.name, [job.job_id])
    result = dg.materialize(all_assets, partition_key=job.job_id, resources=resources, instance=instance,
                            raise_on_error=False)
    assert result.success
    assert db.get_item(db.jobs_table, {"job_id": job.job_id})["status"] == "completed"
    run_id = result.run_id

    # The run, its events and the job's partition are rows in Postgres (asked directly, not through Dagster).
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchall() == [("SUCCESS",)]
        cursor.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = %s",
            (run_id, "ASSET_MATERIALIZATION"),
        )
        assert cursor.fetchone()[0] == 6  # process_job's six assets
        cursor.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = %s",
                       (jobs_partitions.name,))
        assert (job.job_id,) in cursor.fetchall()
    connection.close()

    # Nothing of the run on local disk: DAGSTER_HOME holds only the instance file (no SQLite, no local logs),
    # and the compute logs' local staging copies were deleted once uploaded.
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == ["dagster.yaml"]
    staged = Path(logs.local_manager._base_dir) / run_id  # /tmp/RUN_ID: the file sets no `local_dir`
    left_behind = [p for p in staged.rglob("*") if p.is_file()]
    shutil.rmtree(staged, ignore_errors=True)  # the empty directories Dagster leaves
    assert left_behind == []

    # The run's compute logs (stdout and stderr of its process) are in S3 under the configured prefix.
    listed = s3_client.list_objects_v2(Bucket=settings.bucket, Prefix=f"{LOG_PREFIX}/storage/{run_id}/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert {key.rsplit(".", 1)[-1] for key in keys} >= {"out", "err"}, keys
    [err_key] = [key for key in keys if key.endswith(".err")]
    stderr = s3_client.get_object(Bucket=settings.bucket, Key=err_key)["Body"].read().decode()
    # Dagster's own log lines for this run's step, as the process wrote them to stderr.
    assert f'{run_id} - ' in stderr and 'Started execution of step "process_job"' in stderr


def _launch_reaches_redis(instance: dg.DagsterInstance, env: dict) -> None:
    """The launcher hands a run to Celery: its `execute_job` task lands in the test broker's `dagster`
    queue (no worker takes it), and the run's health is read from the test result backend. Cleans up."""
    origin = JobPythonOrigin(
        "image_generation_job",
        RepositoryPythonOrigin(
            sys.executable, ModuleCodePointer("imageflow_dagster.definitions", "defs", str(REPO))
        ),
    )
    run = create_run_for_test(instance, job_name="image_generation_job", job_code_origin=origin)
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    task_id = instance.get_run_by_id(run.run_id).tags[DAGSTER_CELERY_TASK_ID_TAG]

    broker = redis.Redis.from_url(env["IMAGEFLOW_CELERY_BROKER_URL"])
    messages = [json.loads(raw) for raw in broker.lrange("dagster", 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["id"]) for m in messages] == [("execute_job", task_id)]
    assert run.run_id in base64.b64decode(messages[0]["body"]).decode()
    run = instance.get_run_by_id(run.run_id)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.UNKNOWN  # PENDING
    # What a worker writes to the result backend when it starts the task (with task_track_started)...
    backend = redis.Redis.from_url(env["IMAGEFLOW_CELERY_BACKEND_URL"])
    meta = {"status": "STARTED", "result": None, "task_id": task_id, "traceback": None, "children": []}
    backend.set(f"celery-task-meta-{task_id}", json.dumps(meta))
    # ...is what run monitoring then sees.
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    broker.delete("dagster")
    backend.delete(f"celery-task-meta-{task_id}")
    instance.delete_run(run.run_id)


def test_deploy_instance_refuses_to_load_without_its_env_vars(production_instance, monkeypatch):
    """Each variable the file reads is required: none falls back to SQLite, the default broker or local logs."""
    _, home, env = production_instance
    for name in ("DAGSTER_POSTGRES_URL", "IMAGEFLOW_CELERY_BROKER_URL", "IMAGEFLOW_CELERY_BACKEND_URL",
                 "ARTIFACTS_BUCKET"):
        with monkeypatch.context() as scoped:
            scoped.delenv(name)
            with pytest.raises(dg.DagsterInvalidConfigError, match=name):
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    instance.run_launcher, instance.compute_log_manager  # both load lazily


@pytest.mark.parametrize("scheme", ["postgres", "postgresql+psycopg2"])
def test_deploy_instance_takes_the_url_as_users_write_it(production_instance, postgres_url, scheme, monkeypatch):
    """Heroku's and secret stores' `postgres://` and SQLAlchemy's driver-named form reach the same database."""
    _, home, _ = production_instance
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url.replace("postgresql", scheme, 1))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_storage.postgres_url.startswith("postgresql+psycopg2://")
        assert instance.get_runs_count() >= 0  # a real query on the test cluster


CLOSED_PORT = "127.0.0.1:9"  # discard: nothing listens there
UNUSABLE_URLS = {
    f"mysql://dagster:pw-not-shown@{CLOSED_PORT}/dagster":
        "imageflow: DAGSTER_POSTGRES_URL must be a PostgreSQL URL such as postgresql://user:password@host:5432/dagster;"
        " it is a 'mysql' URL",
    f"postgresql://dagster:pw-not-shown@{CLOSED_PORT}/dagster":
        f"imageflow: cannot reach Dagster's Postgres at {CLOSED_PORT}/dagster (DAGSTER_POSTGRES_URL): connection to"
        ' server at "127.0.0.1", port 9 failed: Connection refused',
}


def test_daemon_and_worker_with_unusable_storage_exit_with_one_line(production_instance):
    """A URL that is not PostgreSQL, or a server that cannot be reached: the daemon and a Celery worker each end
    non-zero, their last line names the variable and the reason, and the password is nowhere in their output."""
    _, home, env = production_instance
    commands = {"daemon": ["dagster-daemon", "run", "-w", str(REPO / "workspace.yaml")],
                "worker": ["imageflow", "worker", "--concurrency", "1"]}
    started = {}
    for url in UNUSABLE_URLS:
        for name, command in commands.items():
            started[url, name] = subprocess.Popen(
                [str(Path(sys.executable).parent / command[0]), *command[1:]], cwd=REPO, text=True,
                env={**os.environ, **env, "DAGSTER_POSTGRES_URL": url}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            )
    for (url, name), process in started.items():
        output, _ = process.communicate(timeout=90)
        assert process.returncode != 0, (name, output)
        assert output.strip().splitlines()[-1] == UNUSABLE_URLS[url], (name, output)
        assert "pw-not-shown" not in output, (name, output)
