"""A job's images are rendered side by side, at most `image_concurrency` (IMAGEFLOW_IMAGE_CONCURRENCY, default 8) at
once. Evidence is the local OpenAI server's count of image requests it was answering at the same moment: every
image call takes `image_latency_s`, so calls that really overlap are all in flight together."""

import pytest

from imageflow_dagster.resources import build_resources
from imageflow_dagster.settings import Settings
from imageflow_dagster_tests.conftest import with_changes
from imageflow_dagster_tests.workflows import single_image_workflow

# Long enough that every call of a window arrives before the first one is answered (measured: the 8 calls of a
# window arrived within 0.26 s on 2 cores at load 24), short enough that 12 images at a limit of 3 take ~4 s.
IMAGE_LATENCY_S = 1.0


def _peak_images_in_flight(pipeline, openai_server, images: int) -> int:
    openai_server.configure(image_latency_s=IMAGE_LATENCY_S)
    job = pipeline.submit(single_image_workflow(f"Create brand images for the company. [[images:{images}]]"))
    result = pipeline.run(job.job_id)
    assert result.success and pipeline.job(job.job_id)["status"] == "completed"
    stats = openai_server.stats()
    assert stats["images"] == images and stats["attempts"] == images + 1  # one planner call, one call per image
    return stats["max_in_flight"]["images"]


def test_eight_images_are_all_in_flight_at_once(pipeline, openai_server):
    assert _peak_images_in_flight(pipeline, openai_server, 8) == 8


@pytest.mark.parametrize("setting, limit", [(None, 8), ("3", 3)], ids=["default-8", "IMAGEFLOW_IMAGE_CONCURRENCY=3"])
def test_twelve_images_peak_at_the_per_job_limit(pipeline, resources, openai_server, monkeypatch, setting, limit):
    if setting is None:
        monkeypatch.delenv("IMAGEFLOW_IMAGE_CONCURRENCY", raising=False)
    else:
        monkeypatch.setenv("IMAGEFLOW_IMAGE_CONCURRENCY", setting)
    configured = build_resources(Settings.from_env())["openai"].image_concurrency  # the deployment's resource
    assert configured == limit
    resources["openai"] = with_changes(resources["openai"], image_concurrency=configured)
    assert _peak_images_in_flight(pipeline, openai_server, 12) == limit
