"""Crash recovery: 30 jobs in flight, `dagster-daemon` SIGKILLed three times at random moments and restarted.
Every job ends `completed` with exactly one set of artifacts and execution steps, and S3 holds exactly as many
image objects as there are image artifact rows."""

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import boto3
import pytest

from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
JOBS = 30
IMAGES_PER_JOB = 2


def test_daemon_killed_three_times_loses_nothing(local_stack, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", "5")
    rng = random.Random(7)
    stack = local_stack(image_latency_s=0.3, response_latency_s=0.1)
    settings = Settings.from_env()
    db = build_resources(settings)["dynamodb"]
    workflow = single_image_workflow(f"Create {IMAGES_PER_JOB} brand images.")
    jobs = [submit_job(db, workflow=workflow, answers={"name": "Ada"}) for _ in range(JOBS)]
    daemon_command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)]
    daemon = stack.spawn(daemon_command)
    for _ in range(3):
        time.sleep(rng.uniform(3, 8))
        os.kill(daemon.pid, signal.SIGKILL)  # the daemon only: its code servers and runs are orphaned
        daemon.wait()
        daemon = stack.spawn(daemon_command)
    status = lambda j: db.get_item(db.jobs_table, {"job_id": j.job_id})["status"]  # noqa: E731
    wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 420, "30 jobs to finish")
    assert [status(j) for j in jobs] == ["completed"] * JOBS

    s3 = boto3.client("s3", region_name=settings.region)
    image_objects = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings.bucket)
        for o in page.get("Contents", [])
        if o["Key"].endswith(".png")
    ]
    image_rows = []
    for job in jobs:
        rows, _ = db.query_index(db.artifacts_table, "gsi_job_id", "#j = :j", {"#j": "job_id"}, {":j": job.job_id}, limit=100)
        images = [r for r in rows if r["artifact_type"] == "image"]
        assert len(images) == IMAGES_PER_JOB and len({r["s3_key"] for r in images}) == IMAGES_PER_JOB
        assert [r["artifact_type"] for r in rows].count("step_output") == 1
        steps = json.loads(s3.get_object(Bucket=settings.bucket, Key=f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")["Body"].read())
        assert [s["step_order"] for s in steps] == [0, 1]
        image_rows += images
    assert sorted(image_objects) == sorted(r["s3_key"] for r in image_rows)
