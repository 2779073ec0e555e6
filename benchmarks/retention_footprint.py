"""Postgres bytes per imageflow job before and after run retention (deploy/dagster.yaml's instance, in-process runs).

BENCHMARKS.md, "Retention footprint". A pytest module (it uses the suite's Postgres, moto and OpenAI fixtures); run
from the repository root:
  .venv/bin/python -m pytest benchmarks/retention_footprint.py -p imageflow_dagster_tests.conftest -q -s -p no:logging
"""

import os
import time

import psycopg2

from imageflow_dagster.retention import partition_retention_job
from imageflow_dagster_tests.test_run_retention import production, run_job  # noqa: F401 (fixture)
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.workflows import mixed_workflow

JOBS = int(os.getenv("MEASURE_JOBS", "20"))
TABLES = ("runs", "run_tags", "event_logs", "asset_event_tags", "snapshots", "dynamic_partitions", "asset_keys")


def out(line: str) -> None:
    print(line, flush=True)


def sizes(url: str) -> dict:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        out = {"database": cursor.fetchone()[0]}
        for table in TABLES:
            cursor.execute(f"SELECT pg_total_relation_size('{table}'), count(*), "
                           f"coalesce(sum(pg_column_size(t.*)), 0) FROM {table} t")
            out[table] = cursor.fetchone()
    connection.close()
    return out


def vacuum_full(url: str) -> None:
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("VACUUM FULL")
    connection.close()


def show(label: str, measured: dict, base: dict) -> None:
    out(f"\n{label}: database {measured['database']:,} B (+{measured['database'] - base['database']:,})")
    for table in TABLES:
        total, rows, live = measured[table]
        out(f"  {table:18} total {total:>10,} B  rows {rows:>6}  live row bytes {live:>10,}")


def test_measure(production, s3_client, settings, monkeypatch):
    pipeline, url = production
    monkeypatch.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "0")  # partitions go too: what is left is fixed
    vacuum_full(url)
    base = sizes(url)
    show("empty instance (after VACUUM FULL)", base, base)
    half = JOBS // 2
    for i in range(JOBS):  # half single-image jobs, half text+image jobs (the demo's shape, smaller)
        job = pipeline.submit(mixed_workflow()) if i >= half else None
        if job:
            assert pipeline.run(job.job_id).success
        else:
            run_job(pipeline)
    vacuum_full(url)  # fair comparison: no dead tuples either side
    after_jobs = sizes(url)
    show(f"{JOBS} jobs run", after_jobs, base)
    listed = s3_client.list_objects_v2(Bucket=settings.bucket, Prefix=".imageflow/dagster-compute-logs/")
    out(f"  compute logs in S3: {listed.get('KeyCount', 0)} objects, "
          f"{sum(o['Size'] for o in listed.get('Contents', [])):,} B")
    started = time.monotonic()
    result = partition_retention_job.execute_in_process(instance=pipeline.instance,
                                                        resources={"dynamodb": pipeline.db, "settings": settings_now()})
    out(f"  retention job took {time.monotonic() - started:.1f} s (whole in-process run, both ops)")
    out(f"  retention deleted {result.output_for_node('delete_ended_job_runs')} runs")
    show("after retention, before VACUUM", sizes(url), base)
    vacuum_full(url)
    after = sizes(url)
    show("after retention and VACUUM FULL", after, base)
    per_job = (after_jobs["database"] - base["database"]) / JOBS
    left = (after["database"] - base["database"]) / JOBS
    out(f"\nper job: {per_job:,.0f} B before retention, {left:,.0f} B after (database size, VACUUM FULL)")
