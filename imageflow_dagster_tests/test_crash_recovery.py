"""Crash recovery: 12 jobs in flight, `dagster-daemon` SIGKILLed three times while runs execute, and restarted.
Each kill hit at least one executing run, which finished on its own; every job ends `completed`, processed by
exactly one run that started, with exactly one planner call and one call per image at the OpenAI server; one set
of artifacts and execution steps each; S3 holds exactly as many image objects as there are image artifact rows;
and once the stack is stopped no process of it is left."""

import json
import os
import random
import re
import signal
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import boto3
import dagster as dg
import pytest

from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.workflows import single_image_workflow

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
JOBS = 12
IMAGES_PER_JOB = 2
KILL_AFTER_COMPLETED = (0, JOBS // 3, 2 * JOBS // 3)  # kills spread over the batch: its start, a third, two thirds
MAX_KILLS_PER_PHASE = 5
JOB_TAG = re.compile(r"client number (\d\d)\.")  # in each job's instructions, so in its planner input and prompts


@pytest.mark.timeout(600)  # 12 jobs through the daemon take 1-3 minutes on 2 shared cores; the waits below bound it
def test_daemon_killed_three_times_loses_nothing(local_stack, monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", "5")
    rng = random.Random(7)
    stack = local_stack(image_latency_s=0.3, response_latency_s=0.1)
    settings = Settings.from_env()
    db = build_resources(settings)["dynamodb"]
    instructions = "Create {n} brand images for client number {i:02d}."
    jobs = [
        submit_job(db, workflow=single_image_workflow(instructions.format(n=IMAGES_PER_JOB, i=i)), answers={"name": "Ada"})
        for i in range(JOBS)
    ]
    tag_of = {job.job_id: f"{i:02d}" for i, job in enumerate(jobs)}
    status = lambda j: db.get_item(db.jobs_table, {"job_id": j.job_id})["status"]  # noqa: E731
    instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
    image_runs = dg.RunsFilter(job_name="image_generation_job")
    executing = lambda: instance.get_runs(  # noqa: E731
        filters=dg.RunsFilter(job_name="image_generation_job", statuses=[dg.DagsterRunStatus.STARTED])
    )

    daemon_command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)]
    daemon = stack.spawn(daemon_command)
    hits = []  # per kill: the moment and the runs that were executing then
    for completed_before in KILL_AFTER_COMPLETED:
        # A run seen executing can end before the signal lands; such a kill proves nothing, so kill again.
        for _attempt in range(MAX_KILLS_PER_PHASE):
            time.sleep(rng.uniform(0, 2))
            running = wait_until(
                lambda: sum(status(j) == "completed" for j in jobs) >= completed_before and executing(),
                240,
                f"a run executing after {completed_before} completed jobs",
            )
            seen = [run.run_id for run in running]
            moment = time.time()
            os.kill(daemon.pid, signal.SIGKILL)  # the daemon only: its code servers and runs are orphaned
            daemon.wait()
            daemon = stack.spawn(daemon_command)
            records = instance.get_run_records(filters=dg.RunsFilter(run_ids=seen))
            hit = [r.dagster_run.run_id for r in records if r.end_time is None or r.end_time > moment]
            if hit:
                hits.append((moment, hit))
                break
    assert len(hits) == len(KILL_AFTER_COMPLETED), f"kills that hit an executing run: {hits}"
    wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 420, f"{JOBS} jobs to finish")
    assert [status(j) for j in jobs] == ["completed"] * JOBS

    # A run writes its job's status before it ends: wait for the runs themselves to end.
    wait_until(lambda: all(run.is_finished for run in instance.get_runs(filters=image_runs)), 120, "every run to end")
    records = instance.get_run_records(filters=image_runs)
    # Each kill hit runs while they executed; they went on without the daemon and succeeded.
    status_of = {r.dagster_run.run_id: r.dagster_run.status for r in records}
    for moment, hit in hits:
        assert {status_of[run_id] for run_id in hit} == {dg.DagsterRunStatus.SUCCESS}, f"runs hit at {moment}"
    # One run per job did the work: a run that never started (lost in launch, retried) would be the only other.
    started = Counter(r.dagster_run.tags["dagster/partition"] for r in records if r.start_time is not None)
    assert started == Counter(j.job_id for j in jobs)
    ran = [(r.dagster_run.run_id, r.dagster_run.status) for r in records if r.start_time is not None]
    assert [(run_id, run_status) for run_id, run_status in ran if run_status != dg.DagsterRunStatus.SUCCESS] == []

    # At the OpenAI server: one planner call and one call per image for each job, every one answered 200.
    server = stack.env["OPENAI_BASE_URL"].removesuffix("/v1")
    image_calls = _served(server, "images", "prompt")
    planner_calls = _served(server, "responses", "input")
    assert image_calls == Counter({tag: IMAGES_PER_JOB for tag in tag_of.values()})
    assert planner_calls == Counter({tag: 1 for tag in tag_of.values()})

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
        assert [s["step_type"] for s in steps] == ["form_submission", "ai_generation", "final_output"]
        image_rows += images
    assert sorted(image_objects) == sorted(r["s3_key"] for r in image_rows)

    # Stopping the stack leaves no process of it: not the daemons (killed ones included), their code servers
    # and runs, nor the moto and OpenAI servers.
    instance.dispose()
    sessions = set(stack.pids)
    stack.stop()
    deadline = time.monotonic() + 30  # SIGKILLed processes leave /proc once reaped
    while (left := _stack_processes(sessions, stack.home)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def _served(server: str, endpoint: str, text_field: str) -> Counter:
    """Requests the stack's OpenAI server answered, counted per job tag (every one must have been answered 200)."""
    with urllib.request.urlopen(f"{server}/_local/requests?endpoint={endpoint}") as response:
        log = json.loads(response.read())
    assert {entry["status"] for entry in log} == {200}
    return Counter(JOB_TAG.search(entry[text_field]).group(1) for entry in log)


def _stack_processes(sessions: set[int], home: Path) -> list[str]:
    """Live processes in a session the stack started, or started with its DAGSTER_HOME or its home on the command
    line (a process that made its own session is still found)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        state, session = stat[0], int(stat[3])
        if state == "Z":
            continue  # already dead, waiting to be reaped
        if session in sessions or str(home) in cmdline or f"DAGSTER_HOME={home / 'dagster'}".encode() in environ:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found
