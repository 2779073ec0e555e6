"""Case 8: the coordinator's ceiling. How many runs per minute one `dagster-daemon` on the production instance
(deploy/dagster.yaml: Postgres storage, the Celery run launcher, compute logs in S3) can launch, and so how many
run workers one daemon can feed.

No Celery worker runs: every launched run's task just waits in Redis. What is measured is the daemon's own work
per run, with do-nothing runs so that nothing else competes for the machine, in two phases timed apart: the
sensor submitting a batch (runs created and queued), then the queued run coordinator dequeuing and launching it
(Postgres reads and writes plus one `execute_job` task sent to the broker). The batch waits in the queue behind a
pool with no slots until the sensor is done, so the coordinator is timed launching a full queue, not keeping pace
with the sensor (which is slower: timed together, case 8 would only measure the sensor again).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import dagster as dg
import redis
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

from benchmarks.harness import Measurement
from benchmarks.throughput import ROOT, cpu_of
from imageflow_dagster.local.moto_process import running_moto
from imageflow_dagster.local.services import (
    celery_env,
    log_tail,
    running_postgres,
    running_redis,
)
from imageflow_dagster.local.stack import stop_processes

DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
BUCKET = "imageflow-bench-coordinator"
BATCH_TAG = "bench/batch"  # benchmarks/noop_defs.py tags every run of a batch with it
CELERY_QUEUE = "dagster"  # the broker list dagster-celery's launcher sends `execute_job` tasks to
# The job a real run holds a worker slot for (README/BENCHMARKS: ~60 s per image job) and an `imageflow worker`'s
# concurrency: together, how many runs per minute one worker completes.
RUN_SLOT_S = 60
WORKER_CONCURRENCY = 16
# Launched runs stay STARTING (no worker takes them), and run monitoring fails a run still STARTING after
# deploy/dagster.yaml's start_timeout_seconds (300). Launching a batch must finish well before that, or the daemon
# starts failing (and retrying) runs mid-measurement; each batch's runs are cancelled as soon as it is measured.
# (Queued runs have no such timeout: the sensor phase may take longer without harm.)
SAMPLE_TIMEOUT_S = 200  # per phase: the sensor queuing the batch, then the coordinator launching it
SUBMITTED = [s for s in dg.DagsterRunStatus if s != dg.DagsterRunStatus.NOT_STARTED]  # QUEUED or later
LAUNCHED = [dg.DagsterRunStatus.STARTING]  # and stays so: no worker ever starts the run
POOL = "bench_coordinator"  # benchmarks/noop_defs.py puts its asset in it when IMAGEFLOW_BENCH_NOOP_POOL says so


@dataclass
class Daemon:
    instance: dg.DagsterInstance
    noop_file: Path
    broker: redis.Redis
    log: Path


@dataclass
class Sample:
    submitted_s: float  # from the batch request until the sensor has queued all its runs
    submit_cpu_s: float  # the whole machine's CPU meanwhile
    first_launch_s: float  # from opening the pool until the coordinator's next iteration launched a run
    launch_s: float  # from the first run handed to Celery to the last (task id tagged, task on the broker)
    launch_cpu_s: float  # the whole machine's CPU from opening the pool to the last launch


def run(smoke: bool) -> list[Measurement]:
    runs, samples = (10, 1) if smoke else (300, 3)
    with _production_daemon() as daemon:
        _batch(daemon, 5)  # warm-up: code server loaded, first sensor tick and first launches done
        measured = [_batch(daemon, runs) for _ in range(samples)]
    return _report(runs, measured)


@contextmanager
def _production_daemon() -> Iterator[Daemon]:
    """`dagster-daemon run` on deploy/dagster.yaml against a fresh Postgres, Redis and (moto) S3 bucket."""
    with tempfile.TemporaryDirectory() as tmp, running_postgres() as postgres_url, running_redis() as redis_url, \
            _moto_s3() as aws_env:
        home = Path(tmp)
        env = {
            **aws_env,
            "DAGSTER_HOME": str(_dagster_home(home)),
            "DAGSTER_POSTGRES_URL": postgres_url,
            **celery_env(redis_url),
            "ARTIFACTS_BUCKET": BUCKET,
            "IMAGEFLOW_BENCH_NOOP_FILE": str(home / "noop.json"),
            "IMAGEFLOW_BENCH_NOOP_POOL": POOL,
        }
        with mock.patch.dict(os.environ, env), dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            _close_pool(instance)  # before the daemon starts (this also creates the Postgres schema first, alone)
            with _daemon_process(home) as log:
                yield Daemon(instance, home / "noop.json", redis.Redis.from_url(redis_url), log)


def _dagster_home(home: Path) -> Path:
    """deploy/dagster.yaml with one change: a run limit above any batch. The ceiling measured is the
    coordinator's, not max_concurrent_runs' (8 in production, sized to the workers there are)."""
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    shipped = DEPLOY_YAML.read_text()
    assert shipped.count("max_concurrent_runs: 8\n") == 1, "deploy/dagster.yaml's run limit changed; update case 8"
    (dagster_home / "dagster.yaml").write_text(shipped.replace("max_concurrent_runs: 8\n", "max_concurrent_runs: 100000\n"))
    return dagster_home


@contextmanager
def _moto_s3() -> Iterator[dict[str, str]]:
    """The compute log manager's bucket, in an in-process moto server; yields the AWS env pointing at it."""
    import boto3

    with running_moto(credential="bench") as aws_env:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield aws_env


@contextmanager
def _daemon_process(home: Path) -> Iterator[Path]:
    """`dagster-daemon run` on a workspace of benchmarks/noop_defs.py only, in its own session so that stopping
    its process group also stops the code server it starts."""
    workspace = home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - python_file:\n      relative_path: {ROOT / 'benchmarks' / 'noop_defs.py'}\n"
        f"      working_directory: {ROOT}\n"
    )
    log = home / "daemon.log"
    with open(log, "w") as log_file:
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
                                  cwd=home, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield log
    finally:
        stop_processes([daemon])


def _batch(daemon: Daemon, runs: int) -> Sample:
    """Has the sensor queue `runs` do-nothing runs behind the closed pool, then opens it and times the
    coordinator handing them all to Celery."""
    batch = uuid.uuid4().hex[:8]
    in_broker_before = daemon.broker.llen(CELERY_QUEUE)
    count = lambda statuses: daemon.instance.get_runs_count(dg.RunsFilter(tags={BATCH_TAG: batch}, statuses=statuses))  # noqa: E731

    def submit() -> float:
        started = time.perf_counter()
        daemon.noop_file.write_text(json.dumps({"batch": batch, "runs": runs}))
        return _seconds_until(lambda: count(SUBMITTED) == runs, started, daemon)

    submitted_s, submit_cpu, _ = cpu_of(submit)
    if count(LAUNCHED) > 0:
        raise RuntimeError(f"runs of batch {batch} launched while pool {POOL} had no slots: nothing held the queue")
    timings = {}

    def launch() -> None:
        opened = time.perf_counter()
        daemon.instance.event_log_storage.set_concurrency_slots(POOL, runs)
        timings["first"] = _seconds_until(lambda: count(LAUNCHED) > 0, opened, daemon)
        timings["last"] = _seconds_until(lambda: _all_handed_to_celery(daemon.instance, batch, runs), opened, daemon)

    _, launch_cpu, _ = cpu_of(launch)
    _check_broker(daemon, runs, in_broker_before)
    _cancel(daemon.instance, batch)
    _close_pool(daemon.instance)
    return Sample(submitted_s, submit_cpu, timings["first"], timings["last"] - timings["first"], launch_cpu)


def _close_pool(instance: dg.DagsterInstance) -> None:
    """No slots in the noop asset's pool: the coordinator leaves its runs queued (pool granularity `run`)."""
    instance.event_log_storage.set_concurrency_slots(POOL, 0)


def _all_handed_to_celery(instance: dg.DagsterInstance, batch: str, runs: int) -> bool:
    """All runs STARTING (set just before the launch) and tagged with their Celery task id (set just after the
    broker took the task). The cheap count is polled; the runs themselves are read only once it is full, so
    polling does not compete with the daemon for the CPU it is measured on."""
    launched = dg.RunsFilter(tags={BATCH_TAG: batch}, statuses=LAUNCHED)
    if instance.get_runs_count(launched) < runs:
        return False
    return all(DAGSTER_CELERY_TASK_ID_TAG in run.tags for run in instance.get_runs(launched))


def _check_broker(daemon: Daemon, runs: int, in_broker_before: int) -> None:
    """Every launched run's task is in Redis, waiting: a launch that reached no broker would be timed for nothing."""
    in_broker = daemon.broker.llen(CELERY_QUEUE) - in_broker_before
    if in_broker != runs:
        raise RuntimeError(f"{runs} runs launched but {in_broker} tasks reached the broker's `{CELERY_QUEUE}` queue")


def _seconds_until(condition: Callable[[], bool], started: float, daemon: Daemon) -> float:
    """Seconds from `started` until `condition` holds, polled every 0.1 s (the resolution of the timings)."""
    while not condition():
        if time.perf_counter() - started > SAMPLE_TIMEOUT_S:
            raise TimeoutError(f"batch not done within {SAMPLE_TIMEOUT_S} s; daemon log:\n{log_tail(daemon.log, 40)}")
        time.sleep(0.1)
    return time.perf_counter() - started


def _cancel(instance: dg.DagsterInstance, batch: str) -> None:
    """Ends a measured batch's runs, as workers would have: the next sample's coordinator then sees only its own
    runs in progress, and run monitoring never reaches their start timeout. Cancelled, not failed: run retries
    would launch failed ones again."""
    for run in instance.get_runs(dg.RunsFilter(tags={BATCH_TAG: batch})):
        instance.report_run_canceled(run)


def _report(runs: int, samples: list[Sample]) -> list[Measurement]:
    per_minute = lambda seconds: runs / max(seconds, 0.1) * 60  # noqa: E731  (0.1 s: the polling resolution)
    launched = [per_minute(s.launch_s) for s in samples]
    submitted = [per_minute(s.submitted_s) for s in samples]
    one_worker = WORKER_CONCURRENCY * 60 / RUN_SLOT_S
    assumption = (f"{one_worker:g} runs/min per worker: each run holds one of an `imageflow worker`'s "
                  f"{WORKER_CONCURRENCY} slots for {RUN_SLOT_S} s (a real image job), runs arriving steadily")
    return [
        Measurement(f"8. coordinator ceiling: {runs} queued runs dequeued and launched by one daemon (Postgres, Celery "
                    "launcher)", "-", launched, unit="runs/min",
                    extra={"note": "from the first run's task on the broker to the last; every run queued beforehand "
                                   f"(held by a pool with 0 slots, then given {runs}); no worker takes the tasks"}),
        Measurement(f"8. sensor submission: {runs} runs requested in one tick, until all queued", "-", submitted,
                    unit="runs/min", extra={"note": "from writing the batch request, so it includes the wait for "
                                                    "the sensor's next tick"}),
        Measurement("8. seconds from opening the pool to the first launch (the coordinator's next iteration)", "-",
                    [s.first_launch_s for s in samples]),
        Measurement("8. machine CPU per launched run (daemon, Postgres, Redis, this process polling)", "-",
                    [s.launch_cpu_s / runs for s in samples], unit="CPU-s"),
        Measurement("8. machine CPU per run the sensor submits (daemon, code server, Postgres)", "-",
                    [s.submit_cpu_s / runs for s in samples], unit="CPU-s"),
        Measurement(f"8. workers one daemon's coordinator can feed ({WORKER_CONCURRENCY} slots, {RUN_SLOT_S} s per run)",
                    "-", [rate / one_worker for rate in launched], unit="workers",
                    extra={"note": f"coordinator ceiling / {assumption}"}),
        Measurement(f"8. workers one daemon's sensor can feed ({WORKER_CONCURRENCY} slots, {RUN_SLOT_S} s per run)",
                    "-", [rate / one_worker for rate in submitted], unit="workers",
                    extra={"note": f"sensor submission rate / {assumption}; the lower of the two bounds one daemon"}),
    ]
