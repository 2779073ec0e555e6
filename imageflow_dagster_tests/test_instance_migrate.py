"""`dagster instance migrate`, the Upgrading step of deploy/README.md, run as an operator runs it: the venv's
`dagster` command, deploy/dagster.yaml unchanged in DAGSTER_HOME, its variables pointing at a real Postgres
(imageflow_dagster_tests/services.py), each test on a database of its own.

- A fresh database (a new deployment's first migrate), then the same one again, now current: both exit 0, and the
  second changes nothing (tables, columns, indexes, the alembic revision, Dagster's data-migration markers, rows).
- A schema an older pin left: Dagster's own alembic downgrades put it back four revisions (a column gone, run_tags
  on its old index); migrate brings it to the schema a fresh database gets (but for one index, Dagster's drift).
- After either, an instance opened from the same file stores a run, its events, tags and a job partition, and
  reads them back.
"""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.storage.sql import run_alembic_downgrade
from dagster._core.test_utils import create_run_for_test
from dagster_postgres.run_storage import run_storage as postgres_run_storage
from dagster_postgres.utils import pg_alembic_config

from imageflow_dagster.local.services import celery_env, create_database
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.run_tags import JOB_TAG, TENANT_TAG

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
DAGSTER = Path(sys.executable).parent / "dagster"
# The revision before 047 (run_tags' unique (key, value, run_id) index) and 048 (concurrency_limits'
# using_default_limit column): what a database created by a Dagster of early 2025 holds.
OLDER_REVISION = "16e3655b4d9b"
# Dagster's own drift, not imageflow's: 047 replaces run_tags' (key, value) index with a unique (key, value, run_id)
# one, while a fresh database is still created with the old index (dagster/_core/storage/runs/schema.py, 1.13.27).
# Asserted, so a Dagster that aligns the two shows up here.
MIGRATED_ONLY_INDEXES = {("run_tags", "idx_run_tags_run_id")}
FRESH_ONLY_INDEXES = {("run_tags", "idx_run_tags")}

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def deploy_home(tmp_path, monkeypatch, postgres_url, redis_url):
    """deploy/dagster.yaml in a fresh DAGSTER_HOME, on an empty database of its own on the test cluster; returns
    the environment the `dagster` command gets (the variables the file reads)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    create_database(postgres_url, name)
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_POSTGRES_URL": f"{postgres_url.rsplit('/', 1)[0]}/{name}",
        **celery_env(redis_url),
        "ARTIFACTS_BUCKET": "imageflow-migrate-test",  # named, never reached: migrate touches Postgres only
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env
    _drop_database(postgres_url, name)


def test_migrate_on_a_fresh_database_then_on_a_current_one_changes_nothing(deploy_home):
    database = deploy_home["DAGSTER_POSTGRES_URL"]
    assert _tables(database) == set()

    first = _migrate(deploy_home)
    after_first = _schema(database)
    assert {"runs", "event_logs", "alembic_version", "secondary_indexes"} <= after_first["tables"]
    assert "Storage schema state after migration" in first

    _migrate(deploy_home)
    assert _schema(database) == after_first
    _stores_and_reads_a_run(deploy_home)


def test_migrate_brings_an_older_schema_to_the_current_one(deploy_home, postgres_url):
    database = deploy_home["DAGSTER_POSTGRES_URL"]
    _migrate(deploy_home)
    current = _schema(database)
    _downgrade_to(OLDER_REVISION)
    older = _schema(database)
    assert older["alembic"] == [(OLDER_REVISION,)]
    assert ("run_tags", "idx_run_tags_run_id") not in {index[:2] for index in older["indexes"]}
    assert ("concurrency_limits", "using_default_limit") not in {column[:2] for column in older["columns"]}

    output = _migrate(deploy_home)
    assert f"current: {OLDER_REVISION}" in output  # the state before, as the command prints it
    migrated = _schema(database)
    for part in ("tables", "columns", "alembic", "data_migrations"):
        assert migrated[part] == current[part], part
    migrated_indexes, fresh_indexes = ({i[:2] for i in s["indexes"]} for s in (migrated, current))
    assert (migrated_indexes - fresh_indexes, fresh_indexes - migrated_indexes) == (
        MIGRATED_ONLY_INDEXES, FRESH_ONLY_INDEXES
    )
    _stores_and_reads_a_run(deploy_home)


def _migrate(env: dict) -> str:
    """The Upgrading step's command, in a process of its own: exit 0, or the test fails with its output."""
    done = subprocess.run(
        [str(DAGSTER), "instance", "migrate"], env={**os.environ, **env}, cwd=REPO,
        capture_output=True, text=True, timeout=45,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _downgrade_to(revision: str) -> None:
    """Dagster's alembic scripts run backwards on the run storage's connection (one revision table for the three
    storages of one database), as its own migration tests do."""
    with dg.DagsterInstance.get() as instance, instance.run_storage.connect() as connection:
        run_alembic_downgrade(pg_alembic_config(postgres_run_storage.__file__), connection, revision)


def _stores_and_reads_a_run(env: dict) -> None:
    """What every imageflow process does first: an instance from the same file, a run with an imageflow job's
    tags and its failure event written, then read back by id, by tag and through the event log."""
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        tags = {JOB_TAG: "job_migrated", TENANT_TAG: "tenant_migrated"}
        run = create_run_for_test(instance, job_name="image_generation_job", tags=tags)
        instance.report_run_failed(run, message="stored after migrate")
        instance.add_dynamic_partitions(jobs_partitions.name, ["job_migrated"])

    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        stored = instance.get_run_by_id(run.run_id)
        assert stored.status == dg.DagsterRunStatus.FAILURE and stored.tags[JOB_TAG] == "job_migrated"
        by_tag = instance.get_runs(dg.RunsFilter(tags={TENANT_TAG: "tenant_migrated"}))
        assert [r.run_id for r in by_tag] == [run.run_id]
        messages = [entry.message for entry in instance.all_logs(run.run_id)]
        assert "stored after migrate" in messages
        assert instance.get_dynamic_partitions(jobs_partitions.name) == ["job_migrated"]


def _schema(database: str) -> dict:
    """Everything a migration could change, as Postgres itself reports it."""
    queries = {
        "columns": "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public'",
        "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
        "alembic": "SELECT version_num FROM alembic_version",
        "data_migrations": "SELECT name FROM secondary_indexes",
        "data_migrations_done": "SELECT name, create_timestamp, migration_completed FROM secondary_indexes",
        "instance_info": "SELECT * FROM instance_info",
    }
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        snapshot = {part: sorted(_rows(cursor, query), key=repr) for part, query in queries.items()}
        tables = _tables(database)
        for table in tables:  # every table's row count: a migration that rewrote data would show here
            cursor.execute(f'SELECT count(*) FROM "{table}"')
            snapshot[f"rows:{table}"] = cursor.fetchone()[0]
    connection.close()
    return {**snapshot, "tables": tables}


def _rows(cursor, query: str) -> list[tuple]:
    cursor.execute(query)
    return cursor.fetchall()


def _tables(database: str) -> set[str]:
    with psycopg2.connect(database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        names = {row[0] for row in cursor.fetchall()}
    connection.close()
    return names


def _drop_database(postgres_url: str, name: str) -> None:
    connection = psycopg2.connect(postgres_url)
    connection.autocommit = True  # DROP DATABASE cannot run inside a transaction
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()
