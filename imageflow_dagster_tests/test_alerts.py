"""Alerts reach a loopback Slack-compatible receiver: failed jobs named (real runs failing through the local OpenAI
server's faults, a crashed run ended by the run-failure sensor, and jobs the jobs sensor failed without a run),
completed ones not, no secret in any post; a burst digested to at most 10 posts a minute; the quota and the jobs
sensor alerted once until they recover. The sensor's clock is the test's: minutes pass without waiting for them."""

import logging
import time

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, TickData, TickStatus
from dagster._core.test_utils import create_run_for_test
from dagster._utils.error import SerializableErrorInfo

from imageflow_dagster.alerts import runless
from imageflow_dagster.alerts import sensor as alert_sensor
from imageflow_dagster.alerts.digest import MAX_POSTS_PER_MINUTE
from imageflow_dagster.alerts.sensor import alert_tick
from imageflow_dagster.alerts.watch import JOBS_SENSOR
from imageflow_dagster.definitions import defs
from imageflow_dagster.flow.job_store import claim_job, mark_failed
from imageflow_dagster.flow.loading import MAX_INSTRUCTIONS
from imageflow_dagster.jobs import image_generation_job
from imageflow_dagster.run_tags import CLAIM_TAG, TENANT_TAG
from imageflow_dagster_tests.conftest import Pipeline, with_changes
from imageflow_dagster_tests.settings_now import settings_now
from imageflow_dagster_tests.test_run_status_sensors import _one_event_log
from imageflow_dagster_tests.webhook_receivers import running_receiver
from imageflow_dagster_tests.workflows import single_image_workflow

KEY = "sk-proj-Zq81XvT0kLw4Rb9NcY2mHs7PdE5uJa3Q"  # a known key: it must appear in no alert
UI = "http://ops:ui-password-1234@dagster.test:3000/"
HOOK_PATH = "/services/T0ALERTS/B0ALERTS/hook-secret-path-55"
job_failure_alert_sensor = defs.resolve_sensor_def("job_failure_alert_sensor")
job_run_failure_sensor = defs.resolve_sensor_def("job_run_failure_sensor")
processing_jobs_sensor = defs.resolve_sensor_def("processing_jobs_sensor")


@pytest.fixture
def alerts(settings, resources, db, monkeypatch, tmp_path):
    """A fresh instance (only this test's runs), a loopback receiver as the webhook, the test's clock."""
    # One event log for all runs, as Postgres keeps it (SQLite's default opens a file per run: slow for 30 runs).
    with running_receiver() as receiver, dg.instance_for_test(overrides=_one_event_log(tmp_path)) as instance:
        monkeypatch.setenv("IMAGEFLOW_ALERT_WEBHOOK_URL", receiver.url(HOOK_PATH))
        monkeypatch.setenv("IMAGEFLOW_UI_URL", UI)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        # Failing calls fail at once: the SDK's backoff would only slow the test down.
        resources["openai"] = with_changes(resources["openai"], max_retries=0)
        yield Alerts(instance, db, receiver, Pipeline(instance, resources, db), monkeypatch)


class Alerts:
    def __init__(self, instance, db, receiver, pipeline, monkeypatch):
        self.instance, self.db, self.receiver, self.pipeline = instance, db, receiver, pipeline
        self.monkeypatch, self.cursor, self.clock = monkeypatch, None, time.time()
        self.times: list[float] = []  # the clock at each post received
        self.tick()  # the sensor was running before anything failed

    def tick(self, after_s: float = 0.0) -> list[str]:
        """One evaluation `after_s` later on the sensor's clock, as the daemon makes it; the posts it made."""
        self.clock += after_s
        self.monkeypatch.setattr(alert_sensor, "_now", lambda: self.clock)
        before = len(self.receiver.requests)
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources={"dynamodb": self.db, "settings": settings_now()}
        )
        self.cursor = job_failure_alert_sensor.evaluate_tick(context).cursor
        new = [r.json()["text"] for r in self.receiver.requests[before:]]
        self.times += [self.clock] * len(new)
        return new

    def posts(self) -> list[str]:
        return [r.json()["text"] for r in self.receiver.requests]

    def fail_directly(
        self, message: str, error_type: str = "StepFailed", tenant: str = "tenant_burst"
    ) -> str:
        """A job failed as the asset code ends it (row `failed`, then the run fails), without running it."""
        job_id = self.pipeline.submit(single_image_workflow("Create 1 image."), tenant_id=tenant).job_id
        claim = f"claim_{job_id}"
        assert claim_job(self.db, job_id, claim, ("processing",), 3600)
        run = self._run(job_id, claim, tenant)
        mark_failed(self.db, job_id, message, error_type, claim_id=claim)
        self.instance.report_run_failed(run, message="step failed")
        return job_id

    def _run(self, job_id: str, claim: str, tenant: str) -> dg.DagsterRun:
        tags = {CLAIM_TAG: claim, "dagster/partition": job_id, TENANT_TAG: tenant}
        return create_run_for_test(
            self.instance, job_name=image_generation_job.name, status=dg.DagsterRunStatus.STARTED, tags=tags
        )


def test_failed_jobs_are_named_completed_ones_are_not_and_no_secret_is_posted(alerts, openai_server):
    pipeline = alerts.pipeline
    crashed = _crashed_run_ended_by_the_failure_sensor(alerts)
    leaky = single_image_workflow("Create 2 images. [[resp-fault:500]]")
    leaky["steps"][0]["step_name"] = f"Brand {KEY}"  # the error message names the step: the key is in it
    failing = [
        pipeline.submit(leaky, tenant_id="tenant_a"),
        pipeline.submit(single_image_workflow("Create 2 images. [[resp-fault:500]]"), tenant_id="tenant_b"),
        pipeline.submit(single_image_workflow("Create 1 image."), tenant_id="tenant_c"),
    ]
    openai_server.add_fault(
        endpoint="images", match="", fault="500"
    )  # every image call: outlives the retries
    results = {job.job_id: pipeline.run(job.job_id) for job in failing}
    openai_server.clear_faults()
    completing = [
        pipeline.submit(single_image_workflow("Create 1 brand image."), tenant_id="tenant_ok") for _ in "ab"
    ]
    assert all(pipeline.run(job.job_id).success for job in completing)
    assert not any(result.success for result in results.values())
    assert KEY in pipeline.job(failing[0].job_id)["error_message"]

    posts = alerts.tick()
    assert len(posts) == 4, posts
    for job in failing:
        [post] = [p for p in posts if job.job_id in p]
        assert job.tenant_id in post and "One step" in post and "failed: " in post
        assert f"http://dagster.test:3000/runs/{results[job.job_id].run_id}" in post
    assert any(crashed in p and "worker process exited" in p for p in posts)
    assert not any(job.job_id in p for p in alerts.posts() for job in completing)
    _assert_no_secret(alerts.posts())
    assert alerts.tick(30) == []  # named once


def _crashed_run_ended_by_the_failure_sensor(alerts) -> str:
    """A run that died outside the asset code: the job is `failed` only once job_run_failure_sensor wrote it, and
    the alert sensor waits for that row rather than alert from the run alone."""
    job_id = alerts.pipeline.submit(single_image_workflow("Create 1 image."), tenant_id="tenant_d").job_id
    assert claim_job(alerts.db, job_id, "claim_crash", ("processing",), 3600)
    failure_cursor = _tick_failure_sensor(alerts, None)
    run = alerts._run(job_id, "claim_crash", "tenant_d")
    alerts.instance.report_run_failed(run, message="run worker process exited unexpectedly")
    assert alerts.tick() == []  # the row still says `processing`: pending, not dropped
    _tick_failure_sensor(alerts, failure_cursor)
    assert alerts.pipeline.job(job_id)["status"] == "failed"
    return job_id


def _tick_failure_sensor(alerts, cursor):
    context = dg.build_sensor_context(
        instance=alerts.instance, cursor=cursor, resources={"dynamodb": alerts.db}
    )
    return job_run_failure_sensor.evaluate_tick(context).cursor


def _assert_no_secret(posts: list[str]) -> None:
    for secret in (KEY, "ui-password-1234", "ops:", HOOK_PATH, "hook-secret-path"):
        assert not any(secret in p for p in posts), secret


def test_jobs_failed_by_the_jobs_sensor_without_a_run_are_named(alerts):
    """Bad records: the jobs sensor fails them in DynamoDB and launches nothing, so no run event names them; its
    record in the instance does. One workflow is missing; the other's error names a step called after the key."""
    pipeline = alerts.pipeline
    missing = pipeline.submit(single_image_workflow("Create 1 image."), tenant_id="tenant_missing")
    alerts.db.get_client().delete_item(
        TableName=alerts.db.workflows_table, Key={"workflow_id": {"S": missing.workflow_id}}
    )
    oversized = single_image_workflow("x" * (MAX_INSTRUCTIONS + 1))
    oversized["steps"][0]["step_name"] = f"Brand {KEY}"  # the loader's message names the step
    leaky = pipeline.submit(oversized, tenant_id="tenant_leaky")
    good = pipeline.submit(single_image_workflow("Create 1 image."), tenant_id="tenant_ok")

    requested = _tick_jobs_sensor(alerts).run_requests
    assert [r.partition_key for r in requested] == [good.job_id]  # the bad ones took no run
    assert pipeline.job(missing.job_id)["error_message"] == f"Workflow {missing.workflow_id} not found"
    assert pipeline.job(leaky.job_id)["status"] == "failed" and KEY in pipeline.job(leaky.job_id)["error_message"]
    assert alerts.instance.get_runs_count() == 0

    posts = alerts.tick()
    [named] = [p for p in posts if missing.job_id in p]
    assert "tenant: tenant_missing" in named and f"workflow: {missing.workflow_id}" in named
    assert f"error: Workflow {missing.workflow_id} not found" in named
    assert "run: none" in named and "/runs/" not in named
    [masked] = [p for p in posts if leaky.job_id in p]
    assert "tenant_leaky" in masked and "has instructions longer than" in masked and "[redacted]" in masked
    assert not any(good.job_id in p for p in posts) and len(posts) == 2
    _assert_no_secret(alerts.posts())
    assert alerts.tick(30) == []  # named once

    # The record the UI shows on the asset's page holds no secret either.
    records = alerts.instance.fetch_observations(runless.ASSET_KEY, limit=10).records
    assert {r.asset_observation.metadata["job_id"].value for r in records} == {missing.job_id, leaky.job_id}
    assert not any(KEY in str(r.asset_observation.metadata) for r in records)


def _tick_jobs_sensor(alerts) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=alerts.instance, instance_ref=alerts.instance.get_ref(), definitions=defs,
        resources={"dynamodb": alerts.db, "settings": settings_now()},
    )
    return processing_jobs_sensor.evaluate_tick(context)


def test_a_burst_of_30_failures_is_digested_to_at_most_10_posts_a_minute(alerts):
    jobs = []
    for wave in range(3):  # 10 jobs fail every 20 s, one sensor tick apart
        jobs += [alerts.fail_directly(f"Step 1 (Brand) failed: wave {wave} with {KEY}") for _ in range(10)]
        alerts.tick(20)
    for _ in range(6):
        alerts.tick(20)

    posts = alerts.posts()
    for job_id in jobs:
        assert any(job_id in p for p in posts), f"{job_id} never named"
        first = next(t for t, p in zip(alerts.times, posts) if job_id in p)
        assert first - alerts.times[0] <= 120
    for start in alerts.times:
        assert sum(start <= t < start + 60 for t in alerts.times) <= MAX_POSTS_PER_MINUTE
    assert len(posts) < len(jobs) and any("more job(s) failed" in p for p in posts)
    _assert_no_secret(posts)


def test_quota_exhausted_is_alerted_once_until_a_job_completes_again(alerts, openai_server):
    pipeline = alerts.pipeline
    openai_server.configure(quota_exhausted=True)
    first = [pipeline.submit(single_image_workflow("Create 1 image."))]
    for job in first:
        pipeline.run(job.job_id)
    assert {pipeline.job(j.job_id)["status"] for j in first} == {"failed"}
    posts = alerts.tick()
    later = pipeline.submit(single_image_workflow("Create 1 image."))
    pipeline.run(later.job_id)
    posts += alerts.tick(20) + alerts.tick(20)
    assert sum("quota is exhausted" in p for p in posts) == 1
    assert all(any(j.job_id in p for p in posts) for j in [*first, later])

    openai_server.configure(quota_exhausted=False)
    assert pipeline.run(pipeline.submit(single_image_workflow("Create 1 image.")).job_id).success
    recovered = alerts.tick(20)
    assert any("recovered" in p and "quota" in p for p in recovered)


def test_the_jobs_sensor_failing_is_alerted_once_until_it_ticks_again(alerts):
    state = InstigatorState(
        RemoteInstigatorOrigin(
            RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("imageflow"), "defs"), JOBS_SENSOR
        ),
        InstigatorType.SENSOR,
        InstigatorStatus.DECLARED_IN_CODE,
    )
    alerts.instance.add_instigator_state(state)
    error = SerializableErrorInfo(
        f"botocore.exceptions.ClientError: denied for key {KEY}\nTraceback...", [], "X"
    )
    posts = []
    for _ in range(4):
        _add_tick(alerts.instance, state, TickStatus.FAILURE, alerts.clock, error)
        posts += alerts.tick(15)
    assert sum("jobs sensor" in p and "failing" in p for p in posts) == 1
    assert any("ClientError" in p for p in posts)
    _assert_no_secret(posts)
    _add_tick(alerts.instance, state, TickStatus.SKIPPED, alerts.clock)
    assert any("recovered" in p and "jobs sensor" in p for p in alerts.tick(15))
    assert alerts.tick(15) == []


def _add_tick(instance, state, status, timestamp, error=None):
    instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=JOBS_SENSOR,
            instigator_type=InstigatorType.SENSOR,
            status=status,
            timestamp=timestamp,
            error=error,
            skip_reason="no job waiting" if status == TickStatus.SKIPPED else None,
            selector_id=state.selector_id,
        )
    )


def test_a_receiver_error_keeps_the_alert_and_never_logs_the_url(alerts, caplog):
    alerts.receiver.answer(500, b"no such channel: " + HOOK_PATH.encode())
    job_id = alerts.fail_directly("Step 1 (Brand) failed: OpenAI error 500")
    log = logging.getLogger("test_alerts")
    settings = settings_now()  # the fixture set the UI's URL
    with caplog.at_level(logging.DEBUG):  # whatever any library logs on the way
        cursor, _ = alert_tick(alerts.instance, alerts.db, settings, alerts.cursor, alerts.clock, log)
        assert len(alerts.receiver.requests) == 1 and "HTTP 500" in caplog.text
        alert_tick(alerts.instance, alerts.db, settings, cursor, alerts.clock + 20, log)
    assert job_id in alerts.posts()[-1] and len(alerts.receiver.requests) == 2
    assert HOOK_PATH not in caplog.text and f":{alerts.receiver.port}" not in caplog.text
