"""Case 7: a burst of jobs against OpenAI's images-per-minute limit (12 jobs x 4 images, 30 images/min, 2 s per
image), side by side in one run:
- the seed's way: every job at once, its images one after another, the SDK's default retries (2, honouring
  retry-after) and nothing shared between jobs;
- imageflow through the sensor and `dagster-daemon` on the local stack, with the limit configured
  (`IMAGEFLOW_IMAGES_PER_MINUTE`) and with the limit unknown (learned from the 429s).
The limit-bound time is what any client needs: a minute's bucket at once, the rest one per interval, plus one
render."""

import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from benchmarks.harness import Measurement
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.stack import LocalStack
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job

ROOT = Path(__file__).resolve().parent.parent
MODEL = "gpt-image-2.6-sunburst"
FULL = {"jobs": 12, "images": 4, "per_minute": 30, "latency": 2.0}
SMOKE = {"jobs": 3, "images": 2, "per_minute": 4, "latency": 0.05}


def run(smoke: bool) -> list[Measurement]:
    size = SMOKE if smoke else FULL
    bound = (size["jobs"] * size["images"] - size["per_minute"]) * 60 / size["per_minute"] + size["latency"]
    return [
        _report("seed's way (sequential per job, SDK retries)", _seed_way(size), size, bound),
        _report("imageflow, IMAGEFLOW_IMAGES_PER_MINUTE set", _imageflow(size, configured=True), size, bound),
        _report("imageflow, limit learned from 429s", _imageflow(size, configured=False), size, bound),
    ]


def _seed_way(size: dict) -> dict:
    with tempfile.TemporaryDirectory() as home, LocalStack(Path(home), fixed_ports=False, persist=False) as stack:
        server = _limited_server(stack, size)
        client = openai.OpenAI(api_key="bench", base_url=stack.env["OPENAI_BASE_URL"])  # SDK defaults: 2 retries

        def one_job(k: int) -> bool:
            try:
                for i in range(size["images"]):
                    client.images.generate(model=MODEL, prompt=f"job {k} image {i}", size="1024x1024", quality="low")
                return True
            except openai.RateLimitError:
                return False  # the seed fails the job: "Step 1 (...) failed: ... OpenAI error 429"

        with ThreadPoolExecutor(size["jobs"]) as pool:
            completed = sum(pool.map(one_job, range(size["jobs"])))
        return {"completed": completed, **_calls(server, size)}


def _imageflow(size: dict, configured: bool) -> dict:
    saved = {k: os.environ.get(k) for k in ("IMAGEFLOW_IMAGES_PER_MINUTE", "IMAGEFLOW_SENSOR_INTERVAL_S")}
    os.environ["IMAGEFLOW_SENSOR_INTERVAL_S"] = "1"
    if configured:
        os.environ["IMAGEFLOW_IMAGES_PER_MINUTE"] = str(size["per_minute"])
    else:
        os.environ.pop("IMAGEFLOW_IMAGES_PER_MINUTE", None)
    try:
        with tempfile.TemporaryDirectory() as home, LocalStack(Path(home), fixed_ports=False, persist=False) as stack:
            server = _limited_server(stack, size)
            os.environ.update({k: v for k, v in stack.env.items() if k != "DAGSTER_HOME"})
            db = build_resources(Settings.from_env())["dynamodb"]
            workflow = _workflow(size["images"])
            jobs = [submit_job(db, workflow=workflow, answers={"name": "Ada"}).job_id for _ in range(size["jobs"])]
            stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")])
            statuses = _wait_for_outcomes(db, jobs, timeout_s=600)
            return {"completed": statuses.count("completed"), **_calls(server, size)}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _limited_server(stack: LocalStack, size: dict) -> OpenAIServerControl:
    server = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
    server.configure(images_per_minute=size["per_minute"], image_latency_s=size["latency"])
    return server


def _workflow(images: int) -> dict:
    tool = {"type": "image_generation", "model": MODEL, "size": "1024x1024", "quality": "low", "format": "png"}
    step = {"step_name": "Brand Images", "model": "gpt-5.2", "instructions": f"Create {images} brand images.",
            "step_order": 0, "depends_on": [], "tools": [tool]}
    return {"workflow_name": "burst", "steps": [step]}


def _wait_for_outcomes(db, jobs: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = [db.get_item(db.jobs_table, {"job_id": j}).get("status") for j in jobs]
        if all(s in ("completed", "failed") for s in statuses) or time.monotonic() > deadline:
            return statuses
        time.sleep(1)


def _calls(server: OpenAIServerControl, size: dict) -> dict:
    """Wall time from the first image call to the last image's end, and the share of calls answered 429."""
    calls = server.requests("images")
    served = [c for c in calls if c["status"] == 200]
    refused = [c for c in calls if c["status"] == 429]
    wall = max(c["at"] for c in served) + size["latency"] - min(c["at"] for c in calls) if served else 0.0
    return {"wall_s": wall, "calls": len(calls), "refused": len(refused)}


def _report(name: str, outcome: dict, size: dict, bound: float) -> Measurement:
    share = outcome["refused"] / outcome["calls"] if outcome["calls"] else 0.0
    ratio = outcome["wall_s"] / bound if bound > 0 else 0.0
    met = outcome["completed"] == size["jobs"] and share <= 0.10 and ratio <= 1.3
    note = (
        f"{outcome['completed']}/{size['jobs']} jobs completed; {outcome['refused']} of {outcome['calls']} "
        f"image calls answered 429 ({share:.0%}); wall {outcome['wall_s']:.1f} s = {ratio:.2f}x the limit-bound "
        f"{bound:.1f} s ({size['jobs'] * size['images']} images at {size['per_minute']}/min, {size['latency']} s each)"
    )
    return Measurement(
        case=f"7 burst at the rate limit: {name}",
        target="all jobs completed, <= 10% of image calls 429, wall <= 1.3x limit-bound",
        samples=[outcome["wall_s"]],
        extra={"met": met, "note": note},
    )
