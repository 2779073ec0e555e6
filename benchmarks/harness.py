"""The local stack for in-process benchmark cases: the dev stack's moto and local OpenAI processes, a Dagster instance."""

import os
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from imageflow_dagster.assets import all_assets
from imageflow_dagster.bootstrap import bootstrap
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.stack import LocalStack
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
    openai: OpenAIServerControl
    moto_endpoint: str
    instance: dg.DagsterInstance
    resources: dict

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.moto_endpoint}/moto-api/reset", method="POST")).read()
        bootstrap(self.settings)
        self.openai.reset()

    def submit(self, workflow: dict) -> str:
        return submit_job(self.resources["dynamodb"], workflow=workflow, answers=ANSWERS).job_id

    def run(self, job_id: str, instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
        instance = instance or self.instance
        if not instance.has_dynamic_partition(jobs_partitions.name, job_id):
            instance.add_dynamic_partitions(jobs_partitions.name, [job_id])
        result = dg.materialize(all_assets, partition_key=job_id, resources=self.resources, instance=instance)
        assert result.success, f"benchmark run of {job_id} failed"
        return result


@contextmanager
def local_stack() -> Iterator[Stack]:
    """The dev stack's moto and local OpenAI processes: they use the other core, as AWS and OpenAI would be
    elsewhere, instead of contending with the run for this process's GIL."""
    with tempfile.TemporaryDirectory() as home, LocalStack(Path(home), fixed_ports=False, persist=False) as stack:
        aws = {k: v for k, v in stack.env.items() if k != "DAGSTER_HOME"}  # runs use a test instance
        os.environ.update(aws)
        settings = Settings.from_env()
        with dg.instance_for_test() as instance:
            control = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
            yield Stack(settings, control, stack.env["AWS_ENDPOINT_URL"], instance, build_resources(settings))


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
