"""Case 3: jobs per minute through the sensor and `dagster-daemon` (queued run coordinator), against the floor
of as many do-nothing runs through the same daemon. Case 6: one sensor tick over a large jobs table."""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from benchmarks.harness import Measurement, timed
from imageflow_dagster.local.moto_process import running_moto
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.services import celery_env, running_redis
from imageflow_dagster.local.stack import LocalStack
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = {
    "workflow_name": "throughput",
    "steps": [
        {
            "step_name": "Brand Images",
            "model": "gpt-5.2",
            "instructions": "Create 2 brand images.",
            "step_order": 0,
            "depends_on": [],
            "tools": [{"type": "image_generation", "model": "gpt-image-2.6-sunburst", "quality": "low", "format": "png"}],
        }
    ],
}


LAUNCHER_NAMES = {"default": "default launcher", "celery": "Celery workers"}


def run(smoke: bool) -> list[Measurement]:
    """Both launchers side by side in one run, same batch sizes: Celery run workers (`imageflow worker`, the
    production launcher) and Dagster's default launcher (the embedded stack's)."""
    jobs, samples = (4, 1) if smoke else (30, 3)
    results = []
    for launcher in ("celery", "default"):
        batches = _measure(jobs, samples, launcher)
        results += _report(jobs, batches, LAUNCHER_NAMES[launcher], met=launcher == "celery")
    return results


@dataclass
class Batches:
    jobs: int
    ours: list[float] = field(default_factory=list)  # seconds per batch
    floor: list[float] = field(default_factory=list)
    ours_cpu: list[float] = field(default_factory=list)  # CPU-seconds of the whole machine per job
    floor_cpu: list[float] = field(default_factory=list)
    ours_busy: list[float] = field(default_factory=list)  # share of both cores in use
    pss_per_job: list[float] = field(default_factory=list)  # MB: whole stack's PSS with jobs in flight / jobs
    pss_marginal: list[float] = field(default_factory=list)  # MB: (that - the idle stack's PSS) / jobs


def _measure(jobs: int, samples: int, launcher: str) -> Batches:
    batches = Batches(jobs)
    with tempfile.TemporaryDirectory() as home, _celery_broker(launcher) as broker:
        os.environ["IMAGEFLOW_SENSOR_INTERVAL_S"] = "1"
        noop_file = Path(home) / "noop.json"
        with LocalStack(Path(home) / "stack", fixed_ports=False, persist=False, launcher=launcher, env=broker) as stack:
            if launcher == "celery":
                celery_workers(stack, Path(home), workers=1, concurrency=RUNS_AT_ONCE)
            os.environ.update({**stack.env, "IMAGEFLOW_BENCH_NOOP_FILE": str(noop_file)})
            workspace = _workspace(Path(home))
            stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)])
            instance = dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])
            db = build_resources(Settings.from_env())["dynamodb"]
            _imageflow_batch(db, 2)  # warm-up: code servers loaded, first runs done
            _noop_batch(instance, noop_file, 2)
            for _ in range(samples):
                seconds, cpu, _ = cpu_of(lambda: _noop_batch(instance, noop_file, jobs))
                batches.floor.append(seconds)
                batches.floor_cpu.append(cpu / jobs)
                seconds, cpu, busy = cpu_of(lambda: _imageflow_batch(db, jobs))
                batches.ours.append(seconds)
                batches.ours_cpu.append(cpu / jobs)
                batches.ours_busy.append(busy)
            if not smoke_memory_skipped(jobs):
                busy, idle = _pss_in_flight(stack, db, instance)
                batches.pss_per_job.append(busy / RUNS_AT_ONCE)
                batches.pss_marginal.append((busy - idle) / RUNS_AT_ONCE)
    return batches


def smoke_memory_skipped(jobs: int) -> bool:
    return jobs < RUNS_AT_ONCE


RUNS_AT_ONCE = 4  # the local stack's max_concurrent_runs: every launcher executes at most this many runs at once
IN_FLIGHT_IMAGE_S = 20.0


def _pss_in_flight(stack: LocalStack, db, instance: dg.DagsterInstance) -> tuple[float, float]:
    """(MB of PSS of every process of the stack with RUNS_AT_ONCE jobs rendering 20 s images, MB idle). PSS splits
    pages shared between forked processes among them, so warm children are not counted twice."""
    control = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
    _wait(lambda: all(run.is_finished for run in instance.get_runs(limit=50)), 120)  # earlier runs have exited
    time.sleep(3)
    idle = _stack_pss(stack)
    control.configure(image_latency_s=IN_FLIGHT_IMAGE_S)
    started = lambda: len(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))  # noqa: E731
    ids = [submit_job(db, workflow=WORKFLOW, answers={"name": "Ada"}).job_id for _ in range(RUNS_AT_ONCE)]
    _wait(lambda: started() >= RUNS_AT_ONCE and control.stats()["in_flight"].get("images", 0) >= 2 * RUNS_AT_ONCE, 120)
    busy = _stack_pss(stack)
    control.configure(image_latency_s=0.0)
    _wait(lambda: all((db.get_item(db.jobs_table, {"job_id": j}) or {}).get("status") == "completed" for j in ids), 300)
    return busy, idle


def _stack_pss(stack: LocalStack) -> float:
    """MB of PSS of every process the stack started and all their descendants (daemon, code servers, workers,
    runs)."""
    return tree_pss(stack.pids)


def tree_pss(roots: list[int]) -> float:
    """MB of PSS of the processes `roots` and all their descendants, whatever session a descendant made for
    itself."""
    parents, pss_kb = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            rollup = (entry / "smaps_rollup").read_text().splitlines()
            pss_kb[int(entry.name)] = next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
        except (OSError, IndexError, ValueError, StopIteration):
            continue
    ours = set(roots)
    grew = True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in ours} - ours
        grew, ours = bool(children), ours | children
    return sum(pss_kb.get(pid, 0) for pid in ours) / 1024


@contextmanager
def _celery_broker(launcher: str) -> Iterator[dict[str, str]]:
    """A throwaway Redis as the Celery launcher's broker and result backend; nothing for the other launchers."""
    if launcher != "celery":
        yield {}
        return
    with running_redis() as redis_url:
        yield celery_env(redis_url)


def celery_workers(stack: LocalStack, home: Path, workers: int, concurrency: int) -> None:
    """`workers` x `imageflow worker` on the stack's broker, stopped with the stack."""
    for n in range(workers):
        stack.spawn([str(Path(sys.executable).parent / "imageflow"), "worker", f"--concurrency={concurrency}",
                     f"--name=bench{n}@%h"], env={"PYTHONPATH": str(ROOT)}, cwd=home,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _report(jobs: int, batches: Batches, launcher: str, met: bool) -> list[Measurement]:
    per_minute = lambda seconds: jobs / seconds * 60  # noqa: E731
    ours_rate, floor_rate = [per_minute(s) for s in batches.ours], [per_minute(s) for s in batches.floor]
    ratio = statistics.median(floor_rate) / statistics.median(ours_rate)
    target = (lambda text: text) if met else (lambda text: f"(comparison; target applies to the row above) {text}")
    extra = (lambda ok: {"met": ok}) if met else (lambda ok: {})
    return [
        Measurement(f"3. throughput, {jobs} jobs at once via sensor + daemon, {launcher}", target(">= 35 jobs/min"), ours_rate,
                    unit="jobs/min", extra=extra(statistics.median(ours_rate) >= 35)),
        Measurement(f"3. floor: {jobs} do-nothing runs via the same daemon, {launcher}", "-", floor_rate, unit="runs/min"),
        Measurement(f"3. floor rate / imageflow rate, {launcher}", target("<= 1.2x"), [ratio], unit="x", extra=extra(ratio <= 1.2)),
        Measurement(f"3. machine CPU per imageflow job, {launcher}", "-", batches.ours_cpu, unit="CPU-s"),
        Measurement(f"3. machine CPU per do-nothing run, {launcher}", "-", batches.floor_cpu, unit="CPU-s"),
        Measurement(f"3. share of both cores busy during the imageflow batch, {launcher}", "-",
                    [100 * b for b in batches.ours_busy], unit="%"),
    ] + ([
        Measurement(f"3. memory per job in flight: whole stack's PSS / {RUNS_AT_ONCE} jobs rendering "
                    f"{IN_FLIGHT_IMAGE_S:.0f} s images, {launcher}", "-", batches.pss_per_job, unit="MB"),
        Measurement(f"3. memory per job in flight, marginal: (PSS at {RUNS_AT_ONCE} jobs - PSS idle) / {RUNS_AT_ONCE}, {launcher}",
                    "-", batches.pss_marginal, unit="MB"),
    ] if batches.pss_per_job else [])


def cpu_of(action) -> tuple[float, float, float]:
    """(wall seconds, CPU-seconds used by the whole machine, share of the cores busy) while `action` runs."""
    before, started = _cpu_ticks(), time.perf_counter()
    action()
    after, seconds = _cpu_ticks(), time.perf_counter() - started
    busy, total = after[0] - before[0], after[1] - before[1]
    return seconds, busy / os.sysconf("SC_CLK_TCK"), busy / total if total else 0.0


def _cpu_ticks() -> tuple[int, int]:
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _workspace(home: Path) -> Path:
    path = home / "workspace.yaml"
    path.write_text(
        "load_from:\n"
        f"  - python_module:\n      module_name: imageflow_dagster.definitions\n      working_directory: {ROOT}\n"
        f"  - python_file:\n      relative_path: {ROOT / 'benchmarks' / 'noop_defs.py'}\n      working_directory: {ROOT}\n"
    )
    return path


def _imageflow_batch(db, jobs: int) -> float:
    started = time.perf_counter()
    ids = [submit_job(db, workflow=WORKFLOW, answers={"name": "Ada"}).job_id for _ in range(jobs)]
    _wait(lambda: all((db.get_item(db.jobs_table, {"job_id": j}) or {}).get("status") == "completed" for j in ids), 900)
    return time.perf_counter() - started


def _noop_batch(instance: dg.DagsterInstance, noop_file: Path, runs: int) -> float:
    batch = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    noop_file.write_text(json.dumps({"batch": batch, "runs": runs}))
    done = lambda: len(instance.get_runs(filters=dg.RunsFilter(tags={"bench/batch": batch}, statuses=[dg.DagsterRunStatus.SUCCESS]))) == runs  # noqa: E731
    _wait(done, 900)
    return time.perf_counter() - started


def _wait(condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark batch did not finish")
        time.sleep(0.5)


def sensor_tick(smoke: bool) -> list[Measurement]:
    """One tick of processing_jobs_sensor with 10,000 jobs in the table, 500 of them `processing`."""
    from imageflow_dagster.bootstrap import bootstrap
    from imageflow_dagster.definitions import defs

    total, waiting, samples = (200, 20, 1) if smoke else (10_000, 500, 5)
    with running_moto(credential="b"):
        settings = Settings.from_env()
        bootstrap(settings)
        built = build_resources(settings)
        db = built["dynamodb"]
        template = submit_job(db, workflow=WORKFLOW, answers={"name": "Ada"})
        client = db.get_client()
        with_items = _fill_jobs(client, settings, template, total, waiting)
        sensor = defs.resolve_sensor_def("processing_jobs_sensor")
        ticks, reads = [], []
        for _ in range(samples):
            with dg.instance_for_test() as instance:
                context = dg.build_sensor_context(instance=instance, instance_ref=instance.get_ref(), definitions=defs,
                                                  resources={"dynamodb": db, "settings": built["settings"]})
                _reset_claims(client, settings, with_items)
                ticks.append(timed(lambda: reads.append(len(sensor.evaluate_tick(context).run_requests))))
    return [
        Measurement(f"6. sensor tick, {total} jobs in the table, {waiting} processing", "well under the 60 s tick limit", ticks,
                    extra={"note": f"each tick reads at most {settings.sensor_max_items_per_tick} jobs from the status GSI and requests "
                                   f"{statistics.median(reads):.0f} runs (IMAGEFLOW_SENSOR_MAX_RUNS_PER_TICK)"}),
    ]


def _fill_jobs(client, settings: Settings, template, total: int, waiting: int) -> list[str]:
    """Jobs that share the template's valid workflow and submission; `waiting` of them are processing."""
    processing = []
    with_batch = []
    for i in range(total):
        job_id = f"job_bench_{i:06d}"
        status = "processing" if i < waiting else "completed"
        if status == "processing":
            processing.append(job_id)
        with_batch.append({"PutRequest": {"Item": {
            "job_id": {"S": job_id}, "tenant_id": {"S": template.tenant_id}, "workflow_id": {"S": template.workflow_id},
            "submission_id": {"S": template.submission_id}, "status": {"S": status},
            "created_at": {"S": f"2026-11-24T00:00:{i % 60:02d}.{i:06d}Z"}}}})
        if len(with_batch) == 25:
            client.batch_write_item(RequestItems={settings.tables.jobs: with_batch})
            with_batch = []
    if with_batch:
        client.batch_write_item(RequestItems={settings.tables.jobs: with_batch})
    return processing


def _reset_claims(client, settings: Settings, job_ids: list[str]) -> None:
    for job_id in job_ids:
        client.update_item(TableName=settings.tables.jobs, Key={"job_id": {"S": job_id}},
                           UpdateExpression="REMOVE imageflow_claim_id, imageflow_lease_until, imageflow_claimed_at")
