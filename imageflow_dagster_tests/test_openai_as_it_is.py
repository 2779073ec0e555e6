"""OpenAI as it really is, through real runs: shut-down models, exhausted quota, rate limits and impossible
image settings, each against the local OpenAI server's behaviour of the real API."""

import json
import threading

import openai

from imageflow_dagster_tests.conftest import asset_metadata, read_json_object, with_changes
from imageflow_dagster_tests.workflows import image_step, single_image_workflow, text_step

# Both models' shutdown dates moved far out: what happens is decided by OpenAI's 404, whatever today's date.
LATE_SHUTDOWNS = {
    "gpt-5": {"shutdown": "2999-01-01", "replacement": "gpt-6.1-sol"},
    "gpt-image-1.5": {"shutdown": "2999-01-01", "replacement": "gpt-image-2.6-sunburst"},
}


def replace_models(pipeline, entries: dict) -> None:
    """The operator's lifecycle entries (IMAGEFLOW_MODEL_REPLACEMENTS), as the deployment's OpenAI resource holds them."""
    pipeline.resources["openai"] = with_changes(pipeline.resources["openai"], model_replacements=json.dumps(entries))


def _steps(s3_client, settings, job) -> list[dict]:
    return read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")


def research_then_images(text_model: str, image_model: str) -> dict:
    return {
        "workflow_name": "Brand kit",
        "steps": [
            text_step("Research", "Research the company.", 0, depends_on=[], model=text_model),
            image_step("Brand Images", "Create 2 brand images.", 1, depends_on=[0], model=image_model, size="1024x1024",
                       quality="low", format="png"),
        ],
    }


def test_models_answering_404_complete_on_their_successors(pipeline, openai_server, s3_client, settings):
    replace_models(pipeline, LATE_SHUTDOWNS)
    openai_server.configure(shut_down_models=["gpt-5", "gpt-image-1.5"])
    job = pipeline.submit(research_then_images("gpt-5", "gpt-image-1.5"))
    result = pipeline.run(job.job_id)
    assert result.success
    assert pipeline.job(job.job_id)["status"] == "completed"

    research, images = _steps(s3_client, settings, job)[1:3]  # then the final_output entry
    assert (research["model"], research["requested_model"]) == ("gpt-6.1-sol", "gpt-5")
    assert (images["image_model"], images["requested_image_model"]) == ("gpt-image-2.6-sunburst", "gpt-image-1.5")
    assert images["usage_info"]["image_model"] == "gpt-image-2.6-sunburst"
    assert {i["model"] for i in images["images"]} == {"gpt-image-2.6-sunburst"}
    assert json.loads(images["output"])["image_model"] == "gpt-image-2.6-sunburst"

    usage = {row["model"]: row for row in pipeline.usage(job.job_id)}
    assert set(usage) == {"gpt-6.1-sol", "gpt-5.2", "gpt-image-2.6-sunburst"}
    assert float(usage["gpt-image-2.6-sunburst"]["cost_usd"]) > 0 and float(usage["gpt-6.1-sol"]["cost_usd"]) > 0

    served = [(r["model"], r["status"]) for r in openai_server.requests()]
    assert served.count(("gpt-5", 404)) == 1 and served.count(("gpt-image-1.5", 404)) == 2
    planned = asset_metadata(result, "planned_prompts")["model_replacements"].data
    assert [(r["step"], r["requested"], r["used"]) for r in planned] == [(1, "gpt-5", "gpt-6.1-sol")]
    rendered = asset_metadata(result, "generated_images")["model_replacements"].data
    assert [(r["requested"], r["used"]) for r in rendered] == [("gpt-image-1.5", "gpt-image-2.6-sunburst")]


def test_a_model_past_its_shutdown_date_is_replaced_before_the_call(pipeline, openai_server, s3_client, settings):
    retired = {"gpt-image-2": {"shutdown": "2020-01-01", "replacement": "gpt-image-2.6-flare"}}
    replace_models(pipeline, retired)
    job = pipeline.submit(single_image_workflow("Create 1 brand image.", model="gpt-image-2", size="1792x1024"))
    assert pipeline.run(job.job_id).success
    step = _steps(s3_client, settings, job)[1]
    assert (step["image_model"], step["requested_image_model"]) == ("gpt-image-2.6-flare", "gpt-image-2")
    assert step["model_replacements"][0]["reason"] == "gpt-image-2 shut down on 2020-01-01"
    [call] = openai_server.requests("images")
    assert call["model"] == "gpt-image-2.6-flare" and call["params"]["size"] == "1792x1024"


def test_a_gone_model_without_successor_fails_naming_the_model_and_the_setting(pipeline, openai_server):
    openai_server.configure(shut_down_models=["gpt-image-7"])
    job = pipeline.submit(single_image_workflow("Create 1 brand image.", model="gpt-image-7"))
    assert not pipeline.run(job.job_id).success
    message = pipeline.job(job.job_id)["error_message"]
    assert message.startswith("Step 1 (Brand Images) failed: image 1 (")
    assert "model gpt-image-7 is not available from OpenAI (404 model_not_found)" in message
    assert "IMAGEFLOW_MODEL_REPLACEMENTS" in message


def test_an_impossible_image_size_fails_before_any_call(pipeline, openai_server):
    job = pipeline.submit(single_image_workflow("Create 1 banner.", model="gpt-image-2.6-sunburst", size="4000x400"))
    assert not pipeline.run(job.job_id).success
    assert pipeline.job(job.job_id)["error_message"] == (
        "Step 1 (Brand Images) failed: image size 4000x400 has an aspect ratio of 10.00:1; "
        "gpt-image-2.6-sunburst accepts 1:3 to 3:1"
    )
    assert openai_server.requests() == []


def test_exhausted_quota_fails_at_once_without_retries(pipeline, openai_server):
    openai_server.configure(quota_exhausted=True)
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"].startswith(
        "Step 1 (Brand Images) failed: OpenAI quota exhausted: You exceeded your current quota"
    )
    assert len(openai_server.requests()) == 1


def drain_image_bucket(openai_server) -> int:
    """Spend the server's whole image budget, as other work on the same account would."""
    client = openai.OpenAI(base_url=openai_server.base_url, api_key="other-work", max_retries=0)
    spent = 0
    while True:
        try:
            client.images.generate(model="gpt-image-2.6-sunburst", prompt="other work", size="1024x1024")
            spent += 1
        except openai.RateLimitError:
            return spent


def watch_live_step(pipeline, job_id: str, stop: threading.Event, seen: set) -> None:
    """What the seed's job page would show while the run goes on, read from the job row."""
    while not stop.wait(0.05):
        live = (pipeline.job(job_id) or {}).get("live_step") or {}
        seen.update(line for line in live.get("output_text", "").splitlines())


def test_rate_limited_images_wait_and_complete_and_say_so(pipeline, openai_server, s3_client, settings):
    # One image every 3 s: even if planning takes a few seconds on a busy machine, most of the 4 images must wait.
    openai_server.configure(images_per_minute=20)
    assert drain_image_bucket(openai_server) >= 20
    job = pipeline.submit(single_image_workflow("Create 4 brand images.", model="gpt-image-2.6-sunburst"))
    stop, seen = threading.Event(), set()
    watcher = threading.Thread(target=watch_live_step, args=(pipeline, job.job_id, stop, seen))
    watcher.start()
    try:
        result = pipeline.run(job.job_id)
    finally:
        stop.set()
        watcher.join()
    assert result.success and pipeline.job(job.job_id)["status"] == "completed"

    images = _steps(s3_client, settings, job)[1]["images"]
    assert all(i["status"] == "generated" for i in images)
    refused = sum(i.get("rate_limited", 0) for i in images)
    assert refused >= 1 and refused == openai_server.stats()["rate_limited"] - 1  # minus the drain's last call
    metadata = asset_metadata(result, "generated_images")
    assert metadata["rate_limited_429s"].value == refused
    assert metadata["rate_limit_wait_s"].value > 0
    assert any(line.startswith("Waiting for the OpenAI rate limit: image ") for line in seen), seen


def test_an_image_stops_waiting_when_the_patience_runs_out(pipeline, resources, openai_server):
    resources["openai"] = with_changes(resources["openai"], rate_limit_wait_s=1.0)
    openai_server.configure(images_per_minute=2)  # the next image is 30 s away
    drain_image_bucket(openai_server)
    job = pipeline.submit(single_image_workflow("Create 1 brand image.", model="gpt-image-2.6-sunburst"))
    assert not pipeline.run(job.job_id).success
    message = pipeline.job(job.job_id)["error_message"]
    assert message.startswith("Step 1 (Brand Images) failed: image 1 (Brand Images 1): OpenAI rate limit: still limited")
    assert "IMAGEFLOW_RATE_LIMIT_WAIT_S=1" in message
