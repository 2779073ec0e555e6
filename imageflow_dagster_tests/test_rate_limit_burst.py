"""A burst against OpenAI's images-per-minute limit, the way production meets it: the local stack's OpenAI process
limits each model to 40 images/min with 2 s per image, and `dagster-daemon` and the sensor run a job of 48 images
(4 steps of 12) that asks for all of them at once, as a burst of submissions does. The server runs either
algorithm a real one may use (a continuously refilled bucket, a rolling minute) and counts refused calls against
the limit, as OpenAI documents. No job may fail, and a 429 must stop the calls already waiting for their slot: few
image calls are answered 429, whether imageflow knows the limit (CONFIGURED_MODEL, in a per-model limits file: the
same budget code as IMAGEFLOW_IMAGES_PER_MINUTE) or learns it from the 429s (LEARNED_MODEL).

One stack and one daemon serve every case. Per algorithm, both bursts run side by side, one on each model: the
server limits each model on its own (as OpenAI does) and imageflow keeps a budget per model, so neither burst
spends the other's minute. One job per burst asks for its whole minute at once. With two, the second run starts
seconds later on a busy machine; a continuously refilled model of the limit then holds a few more images, which a
rolling minute refuses all at once (the first 429 is how imageflow learns that the minute does not refill).
"""

import json
import sys
from pathlib import Path

import pytest

from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.stack import LocalStack
from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job
from imageflow_dagster_tests.test_e2e_daemon import WORKSPACE, wait_until
from imageflow_dagster_tests.workflows import image_step

pytestmark = pytest.mark.e2e
JOBS, STEPS, IMAGES_PER_STEP = 1, 4, 12  # per burst: 48 images, more than the minute's 40
IMAGES = JOBS * STEPS * IMAGES_PER_STEP
IMAGES_PER_MINUTE, LATENCY_S = 40, 2.0
CONFIGURED_MODEL, LEARNED_MODEL = "gpt-image-2.6-flare", "gpt-image-2.6-sunburst"
MOST_REFUSED = {CONFIGURED_MODEL: 0.10, LEARNED_MODEL: 0.25}  # share of image calls answered 429


@pytest.fixture(scope="module")
def burst_stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("burst")
    limits = home / "rate_limits.json"
    limits.write_text(json.dumps({"images_per_minute": {CONFIGURED_MODEL: IMAGES_PER_MINUTE}}))
    with pytest.MonkeyPatch.context() as env:
        env.delenv("IMAGEFLOW_IMAGES_PER_MINUTE", raising=False)
        env.setenv("IMAGEFLOW_RATE_LIMITS_FILE", str(limits))
        env.setenv("IMAGEFLOW_IMAGE_CONCURRENCY", str(STEPS * IMAGES_PER_STEP))  # a job's images ask at once
        env.setenv("IMAGEFLOW_SENSOR_INTERVAL_S", "1")
        with LocalStack(home / "stack", fixed_ports=False, persist=False) as stack:
            for key, value in stack.env.items():
                env.setenv(key, value)
            stack.spawn([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(WORKSPACE)])
            yield stack


def burst_workflow(model: str) -> dict:
    tool = {"model": model, "size": "1024x1024", "quality": "low", "format": "png"}
    steps = [
        image_step(f"Images {k}", f"Create {IMAGES_PER_STEP} brand images.", k, depends_on=[], **tool)
        for k in range(STEPS)
    ]
    return {"workflow_name": "Burst", "steps": steps}


def run_bursts(stack: LocalStack, algorithm: str) -> dict[str, list[dict]]:
    """Both bursts at once on a fresh limit and forgotten budgets; returns each model's image calls."""
    server = OpenAIServerControl(stack.env["OPENAI_BASE_URL"])
    server.reset()
    server.configure(
        images_per_minute=IMAGES_PER_MINUTE, rate_limit_algorithm=algorithm, refused_calls_count=True,
        rate_limit_per_model=True, image_latency_s=LATENCY_S,
    )
    settings = Settings.from_env()
    db = build_resources(settings)["dynamodb"]
    for key in ("images", f"images:{CONFIGURED_MODEL}"):
        db.get_client().delete_item(TableName=settings.rate_limits_table, Key={"budget": {"S": key}})
    jobs = [
        submit_job(db, workflow=burst_workflow(model), answers={"name": "Ada"}).job_id
        for model in (CONFIGURED_MODEL, LEARNED_MODEL)
        for _ in range(JOBS)
    ]
    status = lambda job_id: db.get_item(db.jobs_table, {"job_id": job_id}).get("status")  # noqa: E731
    wait_until(lambda: all(status(j) in ("completed", "failed") for j in jobs), 300, "the bursts to finish")
    assert [status(j) for j in jobs] == ["completed"] * len(jobs), [
        db.get_item(db.jobs_table, {"job_id": j}).get("error_message") for j in jobs if status(j) != "completed"
    ]
    assert server.stats()["quota_rejected"] == 0
    calls = server.requests("images")
    return {model: [c for c in calls if c["model"] == model] for model in MOST_REFUSED}


def answered(calls: list[dict], status: int) -> list[dict]:
    return [c for c in calls if c["status"] == status]


def timeline(calls: list[dict]) -> str:
    """When the 429s came and how long the burst took, from its first image call: printed for the record."""
    first = min(c["at"] for c in calls)
    refused = [round(c["at"] - first, 1) for c in answered(calls, 429)]
    return f"{len(refused)} of {len(calls)} answered 429 (at {refused} s); last served at " + (
        f"{max(c['at'] for c in answered(calls, 200)) - first:.1f} s"
    )


@pytest.mark.parametrize("algorithm", ["token_bucket", "rolling_window"])
def test_a_burst_costs_few_429s_whether_the_limit_is_configured_or_learned(burst_stack, algorithm):
    calls = run_bursts(burst_stack, algorithm)
    for model in MOST_REFUSED:
        print(f"{algorithm}, {model}: {timeline(calls[model])}")
    for model, most_refused in MOST_REFUSED.items():
        served, refused = answered(calls[model], 200), answered(calls[model], 429)
        assert len(served) == IMAGES
        assert len(refused) <= most_refused * len(calls[model]), f"{model}: {timeline(calls[model])}"
    assert answered(calls[LEARNED_MODEL], 429), "the server never refused: the burst did not reach the limit"
