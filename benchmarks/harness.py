"""The local stack for in-process benchmark cases: moto over HTTP, the local OpenAI server, a Dagster instance."""

import os
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dagster as dg
from moto.server import ThreadedMotoServer

from imageflow_dagster.assets import all_assets
from imageflow_dagster.bootstrap import bootstrap
from imageflow_dagster.local.openai_server import LocalOpenAIServer
from imageflow_dagster.partitions import jobs_partitions
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job

ANSWERS = {"name": "Ada Lovelace", "company": "Acme Analytics", "email": "ada@example.com"}


@dataclass
class Measurement:
    case: str
    target: str
    samples: list[float]
    unit: str = "s"
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@dataclass
class Stack:
    settings: Settings
    openai: LocalOpenAIServer
    moto_endpoint: str
    instance: dg.DagsterInstance
    resources: dict

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_endpoint}/moto-api/reset", method="POST")).read()
        bootstrap(self.settings)
        self.openai.reset()

    def submit(self, workflow: dict) -> str:
        return submit_job(self.resources["dynamodb"], workflow=workflow, answers=ANSWERS).job_id

    def run(self, job_id: str) -> dg.ExecuteInProcessResult:
        if not self.instance.has_dynamic_partition(jobs_partitions.name, job_id):
            self.instance.add_dynamic_partitions(jobs_partitions.name, [job_id])
        result = dg.materialize(all_assets, partition_key=job_id, resources=self.resources, instance=self.instance)
        assert result.success, f"benchmark run of {job_id} failed"
        return result


@contextmanager
def local_stack() -> Iterator[Stack]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )
    settings = Settings.from_env()
    bootstrap(settings)
    with LocalOpenAIServer() as server, dg.instance_for_test() as instance:
        resources = build_resources(settings)
        fields = {name: getattr(resources["openai"], name) for name in type(resources["openai"]).model_fields}
        resources["openai"] = type(resources["openai"])(**{**fields, "base_url": server.base_url})
        yield Stack(settings, server, endpoint, instance, resources)
    moto.stop()


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
