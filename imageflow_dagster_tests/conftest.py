"""Shared fixtures: moto over HTTP (ThreadedMotoServer), our local OpenAI server, real `materialize`."""

import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import boto3
import dagster as dg
import pytest

from imageflow_dagster.assets import all_assets
from imageflow_dagster.bootstrap import bootstrap
from imageflow_dagster.local.moto_process import running_moto
from imageflow_dagster.local.openai_server import LocalOpenAIServer
from imageflow_dagster.local.stack import LocalStack
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources import build_resources
from imageflow_dagster.resources.dynamodb import DynamoDBResource, deserialize_item
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import SubmittedJob, submit_job

pytest_plugins = ["imageflow_dagster_tests.services"]

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with running_moto(region=REGION) as aws_env:
        os.environ.pop("OPENAI_API_KEY", None)  # no test may reach the real OpenAI (restored at the end)
        yield aws_env["AWS_ENDPOINT_URL"]


@pytest.fixture(scope="session")
def openai_server() -> Iterator[LocalOpenAIServer]:
    with LocalOpenAIServer() as server:
        yield server


@pytest.fixture
def settings(moto_endpoint: str, openai_server: LocalOpenAIServer) -> Settings:
    """A clean moto (tables + bucket re-created) and a clean local OpenAI server for every test."""
    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request).read()
    openai_server.reset()
    openai_server.configure(
        image_latency_s=0.0,
        response_latency_s=0.0,
        image_payload="small",
        images_per_minute=0,
        shut_down_models=[],
        quota_exhausted=False,
    )
    settings = Settings.from_env()
    bootstrap(settings, public_images=True)  # as the local stack does: image URLs are read from moto
    return settings


@pytest.fixture
def resources(settings: Settings, openai_server: LocalOpenAIServer) -> dict:
    built = build_resources(settings)
    built["openai"] = with_changes(
        built["openai"], base_url=openai_server.base_url, strict_response_validation=True, max_retries=2
    )
    return built


def with_changes(resource: dg.ConfigurableResource, **changes) -> dg.ConfigurableResource:
    """A copy of `resource` with other config (model_copy would not reach Dagster's resolved config)."""
    fields = {name: getattr(resource, name) for name in type(resource).model_fields}
    return type(resource)(**{**fields, **changes})


@pytest.fixture
def db(resources: dict) -> DynamoDBResource:
    return resources["dynamodb"]


@pytest.fixture
def s3_client(settings: Settings):
    return boto3.client("s3", region_name=REGION)


@pytest.fixture(scope="session")
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@dataclass
class Pipeline:
    """Runs the job's partition with real resources, the way a sensor-launched run would."""

    instance: dg.DagsterInstance
    resources: dict
    db: DynamoDBResource

    def submit(self, workflow: dict, answers: dict | None = None, **kwargs) -> SubmittedJob:
        return submit_job(self.db, workflow=workflow, answers=answers or DEFAULT_ANSWERS, **kwargs)

    def run(self, job_id: str, run_config: dict | None = None, tags: dict | None = None) -> dg.ExecuteInProcessResult:
        if not self.instance.has_dynamic_partition(jobs_partitions.name, job_id):
            self.instance.add_dynamic_partitions(jobs_partitions.name, [job_id])
        return dg.materialize(
            all_assets,
            partition_key=job_id,
            resources=self.resources,
            instance=self.instance,
            raise_on_error=False,
            run_config=run_config,
            tags=tags,
        )

    def job(self, job_id: str) -> dict:
        return self.db.get_item(self.db.jobs_table, {"job_id": job_id})

    def artifacts(self, job_id: str) -> list[dict]:
        rows, _ = self.db.query_index(
            self.db.artifacts_table, "gsi_job_id", "#j = :j", {"#j": "job_id"}, {":j": job_id}, limit=1000
        )
        return rows

    def usage(self, job_id: str) -> list[dict]:
        items = self.db.get_client().scan(TableName=self.db.usage_records_table)["Items"]
        return [row for row in map(deserialize_item, items) if row["job_id"] == job_id]


DEFAULT_ANSWERS = {"name": "Ada Lovelace", "company": "Acme Analytics", "email": "ada@example.com"}


@pytest.fixture
def pipeline(instance: dg.DagsterInstance, resources: dict, db: DynamoDBResource) -> Pipeline:
    return Pipeline(instance, resources, db)


@pytest.fixture
def local_stack(tmp_path, monkeypatch):
    """Starts a LocalStack (moto and local OpenAI processes) in a temp dir and points this process at it;
    call it with LocalStack options. Everything it spawned is stopped at the end of the test."""
    started: list[LocalStack] = []
    monkeypatch.setenv("IMAGEFLOW_SENSOR_INTERVAL_S", "1")

    def start(**options) -> LocalStack:
        stack = LocalStack(tmp_path / f"home{len(started)}", fixed_ports=False, **options).start()
        started.append(stack)
        for key, value in stack.env.items():
            monkeypatch.setenv(key, value)
        return stack

    yield start
    for stack in started:
        stack.stop()


def sense_run_failure(pipeline: "Pipeline", result: dg.ExecuteInProcessResult) -> None:
    """Evaluates `job_run_failure_sensor` on the failed run of `result`, as the daemon would after the run ended."""
    from dagster._core.events import DagsterEventType

    from imageflow_dagster.definitions import defs

    job_run_failure_sensor = defs.resolve_sensor_def("job_run_failure_sensor")
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=job_run_failure_sensor.name,
        dagster_event=failure,
        dagster_instance=pipeline.instance,
        dagster_run=pipeline.instance.get_run_by_id(result.run_id),
        resources={"dynamodb": pipeline.db},
    ).for_run_failure()
    job_run_failure_sensor(context)


def read_json_object(s3_client, bucket: str, key: str):
    return json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())


def asset_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata of `asset`'s materialization in a run, whichever op materialized it."""
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(asset)]
    return event.materialization.metadata


def run_while_watching(pipeline, job_id: str, look: Callable, timeout_s: float = 60, poll_s: float = 0.05):
    """Runs the job in a thread and calls `look()` until it returns something, the run ends or `timeout_s` pass.
    Returns (what `look` returned, or None; the run's result). `poll_s` is a polling interval, not
    synchronisation: the loop ends on what the tables and S3 hold."""
    results = []
    runner = threading.Thread(target=lambda: results.append(pipeline.run(job_id)))
    runner.start()
    seen = None
    try:
        deadline = time.monotonic() + timeout_s
        while seen is None and time.monotonic() < deadline and runner.is_alive():
            seen = look()
            if seen is None:
                time.sleep(poll_s)
    finally:
        runner.join()
    return seen, results[0] if results else None
