"""Case 9: the production deployment under load. deploy/compose.yaml's daemon and two `imageflow worker` services
run as processes (as the fleet test runs them) on deploy/dagster.yaml with a real Postgres and Redis, against the
dev stack's moto and local OpenAI server processes. Three parts, each on a fresh deployment:
- 9a, the wait before work starts: from a job row written `processing` to its first OpenAI call, on an idle
  deployment and under steady arrivals at half the rate limit, as shipped and with the knobs that set it;
- 9b, a deep backlog: N jobs of 2 images submitted at once across tenants, under an images-per-minute limit;
- 9c, bursts at the limit on this deployment against both server algorithms, limit configured and unknown.
"""

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import dagster as dg
import psycopg2

from benchmarks import burst
from benchmarks.harness import Measurement
from benchmarks.throughput import ROOT, tree_pss
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.services import celery_env, running_postgres, running_redis
from imageflow_dagster.local.stack import LocalStack, stop_processes
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests import compose

BIN = Path(sys.executable).parent
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
TENANTS = 10  # jobs spread over this many tenants, so IMAGEFLOW_MAX_JOBS_PER_TENANT does not bind
FULL = {"idle_jobs": 15, "steady_jobs": 40, "backlog_jobs": 1000, "per_minute": 80, "latency": 2.0, "planner": 0.3,
        "burst": {"jobs": 6, "images": 8, "per_minute": 40, "latency": 2.0}}
SMOKE = {"idle_jobs": 2, "steady_jobs": 3, "backlog_jobs": 4, "per_minute": 600, "latency": 0.05, "planner": 0.01,
         "burst": {"jobs": 2, "images": 2, "per_minute": 600, "latency": 0.05}}
# The knobs between a job written `processing` and its run starting: the sensor's interval (IMAGEFLOW_SENSOR_INTERVAL_S)
# and the run queue's dequeue interval (deploy/dagster.yaml, `run_queue.dequeue_interval_seconds`).
SHIPPED = {"sensor_s": 2, "dequeue_s": 1}
BEFORE = {"sensor_s": 15, "dequeue_s": 5}  # the defaults until 2026-12-04: the sensor's, and Dagster's dequeue
FIVE = {"sensor_s": 5, "dequeue_s": 1}  # between the two
WAIT_CONFIGS = (("the defaults before", BEFORE), ("sensor every 5 s", FIVE), ("as shipped", SHIPPED))
P95_TARGET_S = 10.0


@dataclass
class Deployment:
    stack: LocalStack
    settings: Settings
    server: OpenAIServerControl
    db: object  # DynamoDBResource
    postgres_url: str
    instance: dg.DagsterInstance
    workers: list[subprocess.Popen]


def run(smoke: bool, parts: str = "abc") -> list[Measurement]:
    size = SMOKE if smoke else FULL
    results = []
    for name, knobs in WAIT_CONFIGS if "a" in parts else ():
        with deployment(knobs, images_per_minute=size["per_minute"]) as deployed:
            _limit(deployed.server, size["per_minute"], size["latency"], size["planner"])
            results += first_call_waits(deployed, size, name, knobs, steady=knobs is not BEFORE)
    if "b" in parts:
        with deployment(SHIPPED, images_per_minute=size["per_minute"]) as deployed:
            results += deep_backlog(deployed, size)
    if "c" in parts:
        results += bursts(size["burst"])
    return results


# ---- the deployment


@contextmanager
def deployment(knobs: dict, images_per_minute: float | None) -> Iterator[Deployment]:
    """Postgres, Redis, moto and the local OpenAI server; the daemon and two workers with compose's commands and
    environment (the shell exporting IMAGEFLOW_IMAGES_PER_MINUTE when the limit is configured)."""
    with tempfile.TemporaryDirectory() as tmp, running_postgres() as postgres_url, running_redis() as redis_url, \
            LocalStack(Path(tmp) / "stack", fixed_ports=False, persist=False) as stack:
        home = _dagster_home(Path(tmp), knobs["dequeue_s"])
        services = {
            "postgresql://dagster:dagster@postgres:5432/dagster": postgres_url,
            "redis://redis:6379/0": celery_env(redis_url)["IMAGEFLOW_CELERY_BROKER_URL"],
            "redis://redis:6379/1": celery_env(redis_url)["IMAGEFLOW_CELERY_BACKEND_URL"],
        }
        settings = _settings_of(stack)
        shell = {"OPENAI_API_KEY": "sk-bench", "ARTIFACTS_BUCKET": settings.bucket,
                 **{k: v for k, v in stack.env.items() if k.startswith(("AWS_", "OPENAI_"))}}
        shell["IMAGEFLOW_SENSOR_INTERVAL_S"] = str(knobs["sensor_s"])
        if images_per_minute:
            shell["IMAGEFLOW_IMAGES_PER_MINUTE"] = str(images_per_minute)

        processes: list[subprocess.Popen] = []

        def spawn(name: str) -> subprocess.Popen:
            """The service with compose's command and environment and nothing of this process's, from its own
            working directory holding workspace.yaml (as the image's does)."""
            command, environment = compose.service(name, shell)
            workdir = Path(tmp) / name
            workdir.mkdir()
            (workdir / "workspace.yaml").write_text((ROOT / "workspace.yaml").read_text())
            env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "HOME": str(workdir), "DAGSTER_HOME": str(home),
                   **{key: services.get(value, value) for key, value in environment.items()}}
            with open(workdir / "output.log", "w") as log:
                processes.append(subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
            return processes[-1]

        here = {**{k: v for k, v in stack.env.items() if k != "DAGSTER_HOME"}, "DAGSTER_POSTGRES_URL": postgres_url,
                **celery_env(redis_url), "ARTIFACTS_BUCKET": settings.bucket}
        try:
            with mock.patch.dict(os.environ, here), dg.DagsterInstance.from_config(str(home)) as instance:
                # (opened before the services start: it creates the schema alone)
                spawn("daemon")
                workers = [spawn("worker-1"), spawn("worker-2")]
                deployed = Deployment(stack, settings, OpenAIServerControl(stack.env["OPENAI_BASE_URL"]),
                                      build_resources(settings)["dynamodb"], postgres_url, instance, workers)
                _warm_up(deployed)
                yield deployed
        finally:
            stop_processes(processes)


def _settings_of(stack: LocalStack) -> Settings:
    with mock.patch.dict(os.environ, {k: v for k, v in stack.env.items() if k != "DAGSTER_HOME"}):
        return Settings.from_env()


def _dagster_home(tmp: Path, dequeue_s: int | None) -> Path:
    """deploy/dagster.yaml as shipped, or with the run queue's dequeue interval set."""
    home = tmp / "dagster_home"
    home.mkdir()
    text = DEPLOY_YAML.read_text()
    shipped = f"dequeue_interval_seconds: {SHIPPED['dequeue_s']}\n"
    assert text.count(shipped) == 1, "deploy/dagster.yaml's dequeue interval changed; update case 9"
    text = text.replace(shipped, f"dequeue_interval_seconds: {dequeue_s}\n")
    (home / "dagster.yaml").write_text(text)
    return home


def _warm_up(deployed: Deployment) -> None:
    """Two jobs through: code server loaded, workers' first runs done, sensors ticking."""
    jobs = [_submit(deployed, f"warm-{i}", i) for i in range(2)]
    _wait_ended(deployed, jobs, 300)
    deployed.server.reset()


def _limit(server: OpenAIServerControl, per_minute: float, latency: float, planner: float, algorithm="token_bucket"):
    server.reset()
    server.configure(images_per_minute=per_minute, rate_limit_algorithm=algorithm, refused_calls_count=True,
                     image_latency_s=latency, response_latency_s=planner)


def _submit(deployed: Deployment, marker: str, n: int, images: int = 2) -> str:
    step = {"step_name": "Brand Images", "model": "gpt-5.2", "step_order": 0, "depends_on": [],
            "instructions": f"Create {images} brand images for account {marker}.",
            "tools": [{"type": "image_generation", "model": burst.MODEL, "size": "1024x1024", "quality": "low"}]}
    return submit_job(deployed.db, workflow={"workflow_name": "deployment", "steps": [step]}, answers={"name": "Ada"},
                      tenant_id=f"tenant_{n % TENANTS}").job_id


def _statuses(deployed: Deployment, jobs: list[str]) -> list[str]:
    return [deployed.db.get_item(deployed.db.jobs_table, {"job_id": j}).get("status") for j in jobs]


def _wait_ended(deployed: Deployment, jobs: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = _statuses(deployed, jobs)
        if all(s in ("completed", "failed") for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(1)


# ---- 9a: the wait before the first OpenAI call


def first_call_waits(deployed: Deployment, size: dict, name: str, knobs: dict, steady: bool) -> list[Measurement]:
    idle = _idle_waits(deployed, size["idle_jobs"])
    results = [_wait_report(f"idle, {name}", idle, knobs)]
    if steady:
        interval_s = 60 / (size["per_minute"] / 2 / 2)  # half the limit, 2 images per job
        results.append(_wait_report(f"steady arrivals every {interval_s:.1f} s (half the limit), {name}",
                                    _steady_waits(deployed, size["steady_jobs"], interval_s), knobs))
    return results


def _idle_waits(deployed: Deployment, jobs: int) -> list[float]:
    """One job at a time, each after the one before has ended and a random pause (so jobs land anywhere in the
    sensor's interval)."""
    written = {}
    for n in range(jobs):
        time.sleep(random.uniform(0, 3))
        marker = f"idle-{n}-{time.time_ns()}"
        written[marker] = time.time()
        _wait_ended(deployed, [_submit(deployed, marker, n)], 300)
    return _waits(deployed, written)


def _steady_waits(deployed: Deployment, jobs: int, interval_s: float) -> list[float]:
    written, ids, started = {}, [], time.monotonic()
    for n in range(jobs):
        time.sleep(max(0.0, started + n * interval_s - time.monotonic()))
        marker = f"steady-{n}-{time.time_ns()}"
        written[marker] = time.time()
        ids.append(_submit(deployed, marker, n))
    _wait_ended(deployed, ids, 600)
    return _waits(deployed, written)


def _waits(deployed: Deployment, written: dict[str, float]) -> list[float]:
    """Seconds from each job's row written to the first OpenAI request that carries its marker (the planner call)."""
    first = {}
    for call in deployed.server.requests("responses"):
        for marker in written:
            if marker in call.get("input", "") and call["at"] < first.get(marker, float("inf")):
                first[marker] = call["at"]
    missing = set(written) - set(first)
    assert not missing, f"{len(missing)} jobs never called OpenAI"
    return [first[m] - written[m] for m in written]


def _wait_report(name: str, waits: list[float], knobs: dict) -> Measurement:
    p95 = _percentile(waits, 95)
    setting = f"IMAGEFLOW_SENSOR_INTERVAL_S={knobs['sensor_s']}, dequeue_interval_seconds={knobs['dequeue_s']}"
    return Measurement(f"9a. job written `processing` -> first OpenAI call, {name}: p50 (samples: jobs)",
                       f"p95 <= {P95_TARGET_S:.0f} s", waits,
                       extra={"met": p95 <= P95_TARGET_S,
                              "note": f"p50 {statistics.median(waits):.1f} s, p95 {p95:.1f} s, max {max(waits):.1f} s "
                                      f"over {len(waits)} jobs; {setting}"})


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


# ---- 9b: a deep backlog


def deep_backlog(deployed: Deployment, size: dict) -> list[Measurement]:
    jobs_n = size["backlog_jobs"]
    _limit(deployed.server, size["per_minute"], size["latency"], size["planner"])
    memory_start = _workers_mb(deployed)
    bytes_start = _postgres_bytes(deployed.postgres_url)
    started = time.time()
    jobs = [_submit(deployed, f"backlog-{n}", n) for n in range(jobs_n)]
    submitted_s = time.time() - started
    statuses = _wait_ended(deployed, jobs, 60 + jobs_n * 6)
    _wait_runs_finished(deployed.instance, 120)
    seconds = max(c["at"] for c in deployed.server.requests("images")) + size["latency"] - started
    calls = deployed.server.requests("images")
    served, refused = sum(c["status"] == 200 for c in calls), sum(c["status"] == 429 for c in calls)
    runs = _successful_runs_per_job(deployed.instance)
    twice = sum(1 for j in jobs if runs.get(j, 0) > 1)
    time.sleep(5)  # the last runs' processes have exited
    memory_end = _workers_mb(deployed)
    per_job_bytes = (_postgres_bytes(deployed.postgres_url) - bytes_start) / jobs_n
    rate = jobs_n / seconds * 60
    bound = size["per_minute"] / 2
    lost = jobs_n - statuses.count("completed")
    name = f"9b. {jobs_n} jobs x 2 images (L={size['latency']} s) at once, {TENANTS} tenants, limit {size['per_minute']}/min"
    return [
        Measurement(f"{name}: throughput", f"close to the limit's {bound:.0f} jobs/min", [rate], unit="jobs/min",
                    extra={"note": f"{rate / bound:.2f}x the limit-bound rate; submitting took {submitted_s:.0f} s"}),
        Measurement(f"{name}: jobs lost / processed twice", "0 / 0", [lost + twice], unit="calls",
                    extra={"met": lost == 0 and twice == 0 and served == 2 * jobs_n,
                           "note": f"{statuses.count('completed')} completed, {statuses.count('failed')} failed, "
                                   f"{twice} with more than one successful run; {served} images served for "
                                   f"{2 * jobs_n} asked"}),
        Measurement(f"{name}: share of image calls answered 429", "<= 10 %", [100 * refused / max(1, len(calls))],
                    unit="%", extra={"met": refused <= 0.10 * len(calls), "note": f"{refused} of {len(calls)}"}),
        Measurement(f"{name}: the two workers' PSS, idle before / after", "flat", [memory_start, memory_end], unit="MB",
                    extra={"note": f"{memory_start:.0f} MB before, {memory_end:.0f} MB after"}),
        Measurement(f"{name}: Postgres bytes per job", "-", [per_job_bytes / 1024], unit="KB"),
    ]


def _workers_mb(deployed: Deployment) -> float:
    return tree_pss([w.pid for w in deployed.workers])


def _postgres_bytes(url: str) -> int:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        size = cursor.fetchone()[0]
    connection.close()
    return size


def _successful_runs_per_job(instance: dg.DagsterInstance) -> Counter:
    records = instance.get_run_records(filters=dg.RunsFilter(job_name="image_generation_job",
                                                             statuses=[dg.DagsterRunStatus.SUCCESS]))
    return Counter(r.dagster_run.tags.get("dagster/partition") for r in records)


def _wait_runs_finished(instance: dg.DagsterInstance, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not all(r.is_finished for r in instance.get_runs(limit=50)):
        time.sleep(1)


# ---- 9c: bursts at the limit on the deployment


def bursts(size: dict) -> list[Measurement]:
    """Each knowledge of the limit on its own deployment (the workers' environment differs); each algorithm's burst
    in turn on a reset server and a forgotten budget."""
    results = []
    for configured in (True, False):
        with deployment(SHIPPED, images_per_minute=size["per_minute"] if configured else None) as deployed:
            for algorithm in burst.ALGORITHMS:
                _limit(deployed.server, size["per_minute"], size["latency"], 0.0, algorithm)
                table = deployed.db.get_client()
                table.delete_item(TableName=deployed.settings.rate_limits_table,
                                  Key={"budget": {"S": "images"}})
                jobs = [_submit(deployed, f"burst-{n}", n, images=size["images"]) for n in range(size["jobs"])]
                statuses = _wait_ended(deployed, jobs, 900)
                outcome = {"completed": statuses.count("completed"), **burst.calls_of(deployed.server, size)}
                report = burst.report(f"on the deployment, {burst.name_of(algorithm, configured)}", outcome, size,
                                      (algorithm, configured))
                report.case = report.case.replace("7 burst", "9c. burst")
                results.append(report)
    return results
