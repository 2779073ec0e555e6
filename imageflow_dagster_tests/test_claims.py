"""Claims README.md makes that no other test checks: create-only S3 writes, `replay_answers: false`, the default
image model of an image tool that names none, `web_search` passed through to text steps, `CLOUDFRONT_DOMAIN` URLs.
Each asserts what reached S3, DynamoDB or the local OpenAI server."""

import io
import threading
import time

from PIL import Image

from imageflow_dagster_tests.conftest import read_json_object, with_changes
from imageflow_dagster_tests.test_pipeline import _image_keys
from imageflow_dagster_tests.workflows import image_step, single_image_workflow, text_step

NO_REPLAY = {"ops": {"process_job": {"config": {"replay_answers": False}}}}


def _steps(s3_client, settings, job) -> list[dict]:
    return read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")


def _png(color: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(out, "PNG")
    return out.getvalue()


def test_an_image_key_someone_else_wrote_first_keeps_its_bytes(pipeline, openai_server, s3_client, settings):
    """Create-only writes (`If-None-Match: *`): while a run renders an image, another writer stores that key first;
    the run's own write must not replace those bytes."""
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    assert pipeline.run(job.job_id).success
    (key,) = _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")
    s3_client.delete_object(Bucket=settings.bucket, Key=key)  # the rerun's HEAD misses it: it renders it again
    openai_server.reset()
    openai_server.configure(image_latency_s=3.0)  # the window in which the other writer gets there first
    theirs = _png("magenta")
    outcome: dict = {}

    def other_writer() -> None:
        while not openai_server.requests("images"):
            time.sleep(0.01)
        try:  # create-only too: it succeeds only if the run has not written the key yet
            s3_client.put_object(Bucket=settings.bucket, Key=key, Body=theirs, ContentType="image/png", IfNoneMatch="*")
            outcome["first"] = True
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["first"] = exc

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        result = pipeline.run(job.job_id)
    finally:
        writer.join(timeout=60)
    assert outcome.get("first") is True, f"the other writer did not write first: {outcome}"
    assert result.success
    [call] = openai_server.requests("images")  # the run did render the image, and then tried to store it
    assert call["status"] == 200
    assert s3_client.get_object(Bucket=settings.bucket, Key=key)["Body"].read() == theirs


def test_replay_answers_false_asks_the_model_again(pipeline, openai_server, s3_client, settings):
    workflow = {
        "workflow_name": "Research then images",
        "steps": [
            text_step("Research", "Research the company.", 0, depends_on=[]),
            image_step("Brand Images", "Create 1 brand image.", 1, depends_on=[0], model="gpt-image-2.6-sunburst",
                       size="1024x1024", quality="low", format="png"),
        ],
    }
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success
    first_inputs = sorted(r["input"] for r in openai_server.requests("responses"))
    assert len(first_inputs) == 2  # the text step and the planner
    openai_server.reset()

    assert pipeline.run(job.job_id, run_config=NO_REPLAY).success

    # The text step and the planner were asked again, with the same input; the same plan found its stored image.
    assert sorted(r["input"] for r in openai_server.requests("responses")) == first_inputs
    assert openai_server.stats()["images"] == 0
    research, images = _steps(s3_client, settings, job)[1:3]  # then the final_output entry
    assert research["usage_info"]["replayed"] is False and images["usage_info"]["replayed"] is False
    services = sorted(u["service_type"] for u in pipeline.usage(job.job_id))
    assert services.count("openai_worker_report") == 2 and services.count("openai_worker_image_generation") == 2


def test_seed_tools_web_search_passes_through_and_an_unnamed_image_model_is_the_default(
    pipeline, openai_server, s3_client, settings
):
    workflow = {
        "workflow_name": "Seed tools",
        "steps": [
            text_step("Research", "Research the company.", 0, depends_on=[],
                      tools=["web_search", {"type": "file_search", "vector_store_ids": ["vs_1"]}]),
            {"step_name": "Logo", "model": "gpt-5.2", "instructions": "Create 1 logo image.", "step_order": 1,
             "depends_on": [0], "tools": ["image_generation"], "tool_choice": "auto"},
        ],
    }
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success

    # The text step sent web_search (and only it); the planner sent no tools.
    sent_tools = [r["params"].get("tools") for r in openai_server.requests("responses")]
    assert sorted(sent_tools, key=str) == [None, [{"type": "web_search"}]]
    # The image tool named no model: the Images API got IMAGEFLOW_DEFAULT_IMAGE_MODEL's default.
    [call] = openai_server.requests("images")
    assert call["model"] == "gpt-image-2.6-sunburst"
    logo = _steps(s3_client, settings, job)[2]
    assert logo["image_model"] == "gpt-image-2.6-sunburst" and len(logo["image_urls"]) == 1


def test_cloudfront_domain_makes_the_public_urls(pipeline, resources, s3_client, settings):
    domain = "d1example.cloudfront.net"
    resources["s3"] = with_changes(resources["s3"], cloudfront_domain=domain)
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    assert pipeline.run(job.job_id).success

    keys = _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")
    assert len(keys) == 2
    step = _steps(s3_client, settings, job)[1]
    assert sorted(step["image_urls"]) == [f"https://{domain}/{key}" for key in keys]
    assert sorted(i["url"] for i in step["images"]) == sorted(step["image_urls"])
    artifacts = pipeline.artifacts(job.job_id)
    assert sorted(a["artifact_type"] for a in artifacts) == ["image", "image", "json_final", "step_output"]
    for artifact in artifacts:
        assert artifact["public_url"] == f"https://{domain}/{artifact['s3_key']}"
        assert artifact["s3_url"] == f"s3://{settings.bucket}/{artifact['s3_key']}"
