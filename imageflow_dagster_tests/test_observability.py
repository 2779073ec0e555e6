"""Logs and metrics for operators, from real runs and real sensor ticks: with IMAGEFLOW_LOG_FORMAT=json every record
of a run is one JSON line naming its job and run (deploy/dagster.yaml's python_logs block, loaded as shipped), and
with IMAGEFLOW_METRICS=emf the numbers an operator graphs are CloudWatch EMF lines that match what happened."""

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from imageflow_dagster.flow.job_store import CLAIM_ID, CLAIMED_AT, LEASE_UNTIL
from imageflow_dagster.ids import utc_now_iso
from imageflow_dagster.observability.logs import configure_process_logging
from imageflow_dagster.observability.metrics import NAMESPACE, UNITS
from imageflow_dagster.run_tags import sensor_run_tags
from imageflow_dagster_tests import compose
from imageflow_dagster_tests.conftest import Pipeline, asset_metadata, read_json_object, sense_run_failure
from imageflow_dagster_tests.test_fair_share import queue_runs
from imageflow_dagster_tests.test_sensor import submit, tick
from imageflow_dagster_tests.workflows import single_image_workflow

REPO = Path(__file__).resolve().parent.parent
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
CANARY_KEY = "sk-proj-observability-canary-0123456789abcdef"


@pytest.fixture
def json_mode(monkeypatch):
    monkeypatch.setenv("IMAGEFLOW_LOG_FORMAT", "json")
    monkeypatch.setenv("IMAGEFLOW_METRICS", "emf")
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)


@pytest.fixture
def deployed_logging_instance():
    """A test instance with deploy/dagster.yaml's python_logs block, as every production process reads it."""
    python_logs = yaml.safe_load(DEPLOY_YAML.read_text())["python_logs"]
    with dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        yield instance


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def emf_lines(lines: list[dict], metric: str) -> list[dict]:
    return [line for line in lines if "_aws" in line and metric in line]


def assert_valid_emf(line: dict) -> None:
    """The EMF specification's rules for one log event."""
    meta = line["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_600_000_000_000
    [directive] = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert [] in directive["Dimensions"]  # the fleet's total, whatever else
    for dimension_set in directive["Dimensions"]:
        assert len(dimension_set) <= 30
        for key in dimension_set:
            assert isinstance(line[key], str) and line[key]
    for metric in directive["Metrics"]:
        assert metric["Unit"] == UNITS[metric["Name"]]
        assert isinstance(line[metric["Name"]], (int, float)) and not isinstance(line[metric["Name"]], bool)


def test_a_run_writes_json_lines_with_its_job_and_run_and_its_rate_limit_waits(
    json_mode, deployed_logging_instance, resources, db, openai_server, s3_client, settings, capfd
):
    pipeline = Pipeline(deployed_logging_instance, resources, db)
    markers = " ".join(f"[[image{k}:img-fault:429x1]]" for k in (1, 2))
    job = pipeline.submit(single_image_workflow(f"Create 2 brand images. {markers}"))
    # Tagged as the sensor tags its runs (a run launched by hand has the partition key, its tags come later).
    result = pipeline.run(job.job_id, tags=sensor_run_tags(job.job_id, job.tenant_id, job.workflow_id))
    assert result.success
    out, err = capfd.readouterr()

    lines = json_lines(out)
    run_lines = [line for line in lines if line.get("run_id") == result.run_id]
    events = {line.get("event") for line in run_lines}
    assert {"RUN_START", "STEP_START", "ASSET_MATERIALIZATION", "RUN_SUCCESS"} <= events
    for line in run_lines:
        assert line["job_id"] == job.job_id
        assert line["tenant_id"] == job.tenant_id
        assert line["time"].endswith("+00:00") and line["level"] and line["logger"] == "dagster"
    # The assets' own context.log lines, with the message as logged (no Dagster prefix line).
    calls = [line for line in run_lines if line["message"].startswith("[OpenAI Client] Making Responses API call")]
    assert calls and all(line["step"] == "process_job" for line in calls)

    # One EMF line per OpenAI call (a call's 429s are retried inside it): the planner's and the two images'. The
    # 429s are the two the server answered; the waits are those the job's execution steps report per image.
    waits = emf_lines(lines, "RateLimitWaitSeconds")
    for line in waits:
        assert_valid_emf(line)
        assert sorted(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]) == [[], ["Budget"]]
    image_waits = [line for line in waits if line["Budget"].startswith("images")]
    assert len(waits) - len(image_waits) == len(openai_server.requests("responses")) and len(image_waits) == 2
    assert sum(line["RateLimited429s"] for line in waits) == openai_server.stats()["faults"]["429"] == 2
    assert asset_metadata(result, "generated_images")["rate_limited_429s"].value == 2
    steps = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")
    reported = [image.get("rate_limit_wait_s", 0) for step in steps for image in step.get("images", [])]
    assert sum(line["RateLimitWaitSeconds"] for line in image_waits) == pytest.approx(sum(reported), abs=0.01)
    assert sum(reported) > 0
    assert CANARY_KEY not in out + err


def test_text_mode_writes_no_json_and_no_metrics(deployed_logging_instance, resources, db, monkeypatch, capfd):
    monkeypatch.delenv("IMAGEFLOW_LOG_FORMAT", raising=False)
    monkeypatch.delenv("IMAGEFLOW_METRICS", raising=False)
    pipeline = Pipeline(deployed_logging_instance, resources, db)
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    assert pipeline.run(job.job_id).success
    out, _ = capfd.readouterr()
    assert json_lines(out) == []


def test_a_failed_run_counts_its_job_with_the_rows_error_type(json_mode, pipeline, openai_server, capfd):
    openai_server.configure(quota_exhausted=True)
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    result = pipeline.run(job.job_id)
    assert not result.success
    capfd.readouterr()
    sense_run_failure(pipeline, result)  # the run-failure sensor's evaluation, as the daemon makes it

    [failed] = emf_lines(json_lines(capfd.readouterr().out), "JobsFailed")
    assert_valid_emf(failed)
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert (failed["JobsFailed"], failed["ErrorType"]) == (1, row["error_type"])
    assert (failed["job_id"], failed["run_id"], failed["tenant_id"]) == (job.job_id, result.run_id, job.tenant_id)


def test_sensor_ticks_emit_jobs_waiting_and_runs_queued(json_mode, pipeline, db, monkeypatch, capfd):
    monkeypatch.setenv("IMAGEFLOW_MAX_QUEUED_RUNS", "2")
    monkeypatch.setenv("IMAGEFLOW_MAX_JOBS_PER_TENANT", "10")
    bad = pipeline.submit(single_image_workflow("Create 1 image."))  # the oldest: considered first
    db.get_client().delete_item(TableName=db.workflows_table, Key={"workflow_id": {"S": bad.workflow_id}})
    jobs = submit(pipeline, 5)
    with dg.instance_for_test() as instance:
        capfd.readouterr()
        first = tick(instance, db)
        lines = json_lines(capfd.readouterr().out)

        [tick_line] = emf_lines(lines, "JobsWaiting")
        assert_valid_emf(tick_line)
        unclaimed = [job_id for job_id in jobs if CLAIM_ID not in pipeline.job(job_id)]
        assert len(first.run_requests) == 2 and len(unclaimed) == 3
        assert (tick_line["JobsWaiting"], tick_line["RunsQueued"], tick_line["RunsRequested"]) == (3, 2, 2)
        [failed] = emf_lines(lines, "JobsFailed")
        assert_valid_emf(failed)
        assert (failed["job_id"], failed["ErrorType"]) == (bad.job_id, pipeline.job(bad.job_id)["error_type"])

        # The two runs wait in Dagster's queue; the other jobs are claimed by hand, so the next tick has no job
        # to claim and reads no runs for admission: the queue is counted for the metric alone.
        queue_runs(instance, first)
        claimed_now = {CLAIM_ID: "claim_by_hand", LEASE_UNTIL: int(time.time()) + 3600, CLAIMED_AT: utc_now_iso()}
        for job_id in unclaimed:
            db.update_item(db.jobs_table, {"job_id": job_id}, set_values=claimed_now)
        tick(instance, db, first.cursor)
        [tick_line] = emf_lines(json_lines(capfd.readouterr().out), "JobsWaiting")
        assert (tick_line["JobsWaiting"], tick_line["RunsQueued"], tick_line["RunsRequested"]) == (0, 2, 0)


def test_process_logs_are_json_and_never_carry_the_key(json_mode, capfd):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert configure_process_logging()
        logging.getLogger("celery.worker").error(f"connect failed with key {CANARY_KEY}", extra={"job_id": "job_1"})
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.captureWarnings(False)
    [line] = json_lines(capfd.readouterr().out)
    assert (line["level"], line["logger"], line["job_id"]) == ("ERROR", "celery.worker", "job_1")
    assert line["message"] == "connect failed with key [redacted]"


def test_the_deployed_daemon_logs_json_when_asked(tmp_path):
    """compose's daemon command, run from a shell with IMAGEFLOW_DAGSTER_LOG_FORMAT=json (on a throwaway SQLite
    instance: only its own lines matter here), writes Dagster's lines as JSON objects."""
    command, _ = compose.service("daemon", {"IMAGEFLOW_DAGSTER_LOG_FORMAT": "json", "OPENAI_API_KEY": "unused"})
    assert command[-2:] == ["--log-format", "json"]
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    binary = str(Path(sys.executable).parent / command[0])
    daemon = subprocess.Popen(
        [binary, *command[1:]], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        first = None
        while first is None and time.monotonic() < deadline:
            line = daemon.stdout.readline()
            if line.startswith("{"):
                first = json.loads(line)
            elif not line and daemon.poll() is not None:
                break
        assert first and first["logger"].startswith("dagster.daemon") and first["level"] == "info", first
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
