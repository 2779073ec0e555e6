"""A seed-format job materialized end to end against moto and the local OpenAI server."""

import io
import json
import re
import threading

import pytest
from PIL import Image

from imageflow_dagster.resources.openai_client import (
    MARK_BASE64,
    MARK_CALL,
    MARK_CONVERTED,
    MARK_IMAGE_CALL,
    MARK_RECEIVED,
)
from imageflow_dagster_tests.conftest import asset_metadata, read_json_object, with_changes
from imageflow_dagster_tests.workflows import image_step, mixed_workflow, single_image_workflow, text_step

MIXED_IMAGES = 5
SEED_LOG_MARKERS = (MARK_CALL, MARK_RECEIVED, MARK_IMAGE_CALL, MARK_BASE64, MARK_CONVERTED)


def _image_keys(s3_client, bucket: str, prefix: str) -> list[str]:
    """The job's images: image files at the top of its prefix (thumbnails live under `thumbnails/`)."""
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/").get("Contents", [])
    return sorted(o["Key"] for o in listed if o["Key"].rsplit(".", 1)[-1] in ("png", "jpg", "webp"))


def test_mixed_workflow_end_to_end(pipeline, settings, s3_client, openai_server):
    job = pipeline.submit(mixed_workflow())
    result = pipeline.run(job.job_id)
    assert result.success

    row = pipeline.job(job.job_id)
    assert row["status"] == "completed"
    assert row["completed_at"].endswith("Z")
    assert "live_step" not in row and "error_message" not in row
    steps_key = f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json"
    assert row["execution_steps_s3_key"] == steps_key

    # Images: real bytes of the requested format and size, under the job prefix, with matching content types.
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    keys = _image_keys(s3_client, settings.bucket, prefix)
    assert len(keys) == MIXED_IMAGES
    expected = {"png": ("PNG", (1024, 1024), "image/png"), "webp": ("WEBP", (1536, 1024), "image/webp")}
    for key in keys:
        obj = s3_client.get_object(Bucket=settings.bucket, Key=key)
        pil_format, size, content_type = expected[key.rsplit(".", 1)[1]]
        with Image.open(io.BytesIO(obj["Body"].read())) as image:
            assert (image.format, image.size) == (pil_format, size)
        assert obj["ContentType"] == content_type
        assert obj["CacheControl"] == "public, max-age=31536000, immutable"
    assert sum(k.endswith(".png") for k in keys) == 3 and sum(k.endswith(".webp") for k in keys) == 2

    # The Images API got the tool's config, compression as an int and only for webp, never response_format.
    image_calls = openai_server.requests("images")
    assert len(image_calls) == MIXED_IMAGES
    for call in image_calls:
        assert "response_format" not in call["body_keys"]
        if call["params"].get("output_format") == "webp":
            assert call["params"]["output_compression"] == 80 and isinstance(call["params"]["output_compression"], int)
        else:
            assert "output_compression" not in call["params"]

    # Artifact rows: one per image plus one per step output, seed fields, real sizes.
    artifacts = pipeline.artifacts(job.job_id)
    images = [a for a in artifacts if a["artifact_type"] == "image"]
    outputs = [a for a in artifacts if a["artifact_type"] == "step_output"]
    assert sorted(a["s3_key"] for a in images) == keys
    assert sorted(a["artifact_name"] for a in outputs) == [
        "step_1_research.md",
        "step_2_brand_images.json",
        "step_3_social_images.json",
    ]
    for artifact in artifacts:
        assert artifact["artifact_id"].startswith("art_") and len(artifact["artifact_id"]) == 30
        head = s3_client.head_object(Bucket=settings.bucket, Key=artifact["s3_key"])
        assert artifact["file_size_bytes"] == head["ContentLength"] > 0
        assert artifact["mime_type"] == head["ContentType"]
        assert artifact["s3_url"] == f"s3://{settings.bucket}/{artifact['s3_key']}"
        assert artifact["public_url"].endswith(artifact["s3_key"]) and artifact["is_public"] is True
        assert artifact["created_at"].endswith("Z")

    # Usage: planner and text calls and image tokens, with a real image cost.
    usage = pipeline.usage(job.job_id)
    services = sorted(u["service_type"] for u in usage)
    assert services == [
        "openai_image_generation",
        "openai_image_generation",
        "openai_worker_image_generation",
        "openai_worker_image_generation",
        "openai_worker_report",
    ]
    image_usage = [u for u in usage if u["service_type"] == "openai_image_generation"]
    assert all(u["cost_usd"] > 0 and u["output_tokens"] > 0 and u["model"] == "gpt-image-2.6-sunburst" for u in image_usage)
    brand_usage = next(u for u in image_usage if u["output_tokens"] == 3 * 272)
    assert brand_usage["cost_usd"] == pytest.approx(3 * 272 * 30 / 1e6 + brand_usage["input_tokens"] * 5 / 1e6)

    # execution_steps.json: form submission, three ai_generation steps in the seed's shape, the final output;
    # numbers stay numbers.
    steps = read_json_object(s3_client, settings.bucket, steps_key)
    assert [s["step_type"] for s in steps] == ["form_submission"] + ["ai_generation"] * 3 + ["final_output"]
    assert steps[0]["input"]["Name"] == "Ada Lovelace"
    research, brand, social = steps[1:4]
    assert [s["step_order"] for s in steps[1:]] == [1, 2, 3, 4]  # final_output's is the list's length
    assert all(s["success"] is True for s in steps[1:4])
    assert research["output"].startswith("# ")
    brand_output = json.loads(brand["output"])
    assert brand_output["image_model"] == "gpt-image-2.6-sunburst"
    assert brand_output["image_config"] == {
        "size": "1024x1024",
        "quality": "low",
        "background": "opaque",
        "format": "png",
        "compression": 85,
    }
    assert [i["url"] for i in brand_output["images"]] == brand["image_urls"]
    assert len(brand["image_urls"]) == 3 and len(social["image_urls"]) == 2
    # The step's cost is its planner call plus its three images, at pricing.json's rates: gpt-5.2 5/15 per 1M
    # tokens in/out; gpt-image-2.6-sunburst 5 per 1M text tokens in, 30 per 1M image tokens out (272 per low 1024²).
    info = brand["usage_info"]
    assert info["images_generated"] == 3 and info["image_output_tokens"] == 3 * 272
    assert info["input_tokens"] > 0 and info["output_tokens"] > 0 and info["image_input_tokens"] > 0
    planner_cost = info["input_tokens"] * 5 / 1e6 + info["output_tokens"] * 15 / 1e6
    image_cost = info["image_input_tokens"] * 5 / 1e6 + 3 * 272 * 30 / 1e6
    assert info["cost_usd"] == pytest.approx(planner_cost + image_cost) and info["cost_usd"] > 0
    assert brand["artifact_id"] in {a["artifact_id"] for a in outputs}
    assert "=== Form Submission ===" in brand["input"]["context"] and "=== Step 1: Research ===" in brand["input"]["context"]

    # Dagster: per-job usage totals in metadata, the asset checks passed.
    metadata = asset_metadata(result, "execution_steps")
    assert metadata["openai.images"].value == MIXED_IMAGES
    assert metadata["openai.gpt-image-2.6-sunburst.calls"].value == MIXED_IMAGES
    assert metadata["openai.cost_usd"].value == pytest.approx(sum(float(u["cost_usd"]) for u in usage))
    assert metadata["openai.cost_usd"].value > image_usage[0]["cost_usd"] > 0
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"every_planned_image_stored": True, "every_workflow_step_recorded": True}


def test_rerun_is_idempotent(pipeline, settings, s3_client, openai_server):
    job = pipeline.submit(mixed_workflow())
    assert pipeline.run(job.job_id).success
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    keys_before = _image_keys(s3_client, settings.bucket, prefix)
    artifacts_before = sorted(a["artifact_id"] for a in pipeline.artifacts(job.job_id))
    usage_before = len(pipeline.usage(job.job_id))
    openai_server.reset()

    assert pipeline.run(job.job_id).success

    assert openai_server.stats()["images"] == 0 and openai_server.stats()["responses"] == 0
    assert _image_keys(s3_client, settings.bucket, prefix) == keys_before
    assert sorted(a["artifact_id"] for a in pipeline.artifacts(job.job_id)) == artifacts_before
    assert len(pipeline.usage(job.job_id)) == usage_before
    steps = read_json_object(s3_client, settings.bucket, f"{prefix}execution_steps.json")
    assert [s["step_order"] for s in steps] == [0, 1, 2, 3, 4]
    assert pipeline.job(job.job_id)["status"] == "completed"


def test_text_step_can_use_dependency_image_urls(pipeline, settings, s3_client):
    """A step after an image step sees that step's URLs, which exist once the job completes."""
    workflow = {
        "workflow_name": "Images then copy",
        "steps": [
            image_step("Hero", "Create 2 hero images.", 0, model="gpt-image-2.6-sunburst", quality="low", format="jpeg"),
            text_step("Copy", "Write copy that references the images.", 1, depends_on=[0]),
        ],
    }
    job = pipeline.submit(workflow)
    assert pipeline.run(job.job_id).success
    steps = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")
    hero, copy = steps[1], steps[2]
    assert all(url.endswith(".jpg") for url in hero["image_urls"])
    assert "Generated Images:" in copy["input"]["context"]
    assert all(f"- {url}" in copy["input"]["context"] for url in hero["image_urls"])


def test_responses_image_tool_path(pipeline, settings, s3_client, openai_server):
    # chatgpt-image-latest is the one image model outside `gpt-image-*`; kept in service whatever today's date.
    kept = '{"chatgpt-image-latest": {"replacement": "gpt-image-2.6-sunburst"}}'  # as IMAGEFLOW_MODEL_REPLACEMENTS
    pipeline.resources["openai"] = with_changes(pipeline.resources["openai"], model_replacements=kept)
    workflow = single_image_workflow("Draw the company mascot.", model="chatgpt-image-latest", format="webp")
    job = pipeline.submit(workflow)
    result = pipeline.run(job.job_id)
    assert result.success
    assert openai_server.stats()["images"] == 0
    tool_calls = [r for r in openai_server.requests("responses") if "tools" in r["params"]]
    assert tool_calls and tool_calls[0]["params"]["tools"][0]["type"] == "image_generation"
    keys = _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")
    assert len(keys) == 1 and keys[0].endswith(".webp")
    body = s3_client.get_object(Bucket=settings.bucket, Key=keys[0])["Body"].read()
    assert body[:4] == b"RIFF" and body[8:12] == b"WEBP"
    assert [a["artifact_type"] for a in pipeline.artifacts(job.job_id)].count("image") == 1

    # The seed's five debug markers, each with the job's context; never a base64 payload.
    messages = [entry.user_message for entry in pipeline.instance.all_logs(result.run_id)]
    for marker in SEED_LOG_MARKERS:
        assert any(m.startswith(marker) and f"job={job.job_id}" in m for m in messages), marker
    assert not any(re.search(r"[A-Za-z0-9+/]{200,}", m) for m in messages)


def test_moderation_on_one_prompt_is_recorded_and_job_completes(pipeline, settings, s3_client):
    job = pipeline.submit(single_image_workflow("Create 3 brand images. [[image2:img-fault:moderation]]"))
    result = pipeline.run(job.job_id)
    assert result.success
    assert pipeline.job(job.job_id)["status"] == "completed"
    steps = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")
    step = steps[1]
    assert step["success"] is True and len(step["image_urls"]) == 2
    assert [i["status"] for i in step["images"]] == ["generated", "blocked", "generated"]
    assert json.loads(step["output"])["blocked_images"][0]["label"].endswith("2")
    metadata = asset_metadata(result, "generated_images")
    assert metadata["images_blocked"].value == 1


def test_moderation_on_every_prompt_fails_the_step(pipeline):
    job = pipeline.submit(
        single_image_workflow("Create 2 images. [[image1:img-fault:moderation]] [[image2:img-fault:moderation]]")
    )
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("Step 1 (Brand Images) failed: all 2 image(s) were blocked by moderation")
    assert row["error_type"] == "ModerationBlocked"


def test_500_outliving_retries_fails_job_and_rerun_makes_only_the_missing_image(pipeline, settings, s3_client, openai_server):
    job = pipeline.submit(single_image_workflow("Create 3 brand images."))
    openai_server.add_fault(endpoint="images", match="image 2 of 3", fault="500", times=3)  # 1 try + 2 retries
    result = pipeline.run(job.job_id)
    assert not result.success

    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"].startswith("Step 1 (Brand Images) failed: image 2 (")
    assert "500" in row["error_message"]
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    kept = _image_keys(s3_client, settings.bucket, prefix)
    assert len(kept) == 2
    assert sorted(a["s3_key"] for a in pipeline.artifacts(job.job_id) if a["artifact_type"] == "image") == kept
    failed_entries = [r for r in openai_server.requests("images") if "image 2 of 3" in r["prompt"]]
    assert len(failed_entries) == 3  # IMAGEFLOW_OPENAI_MAX_RETRIES=2 retries of a 500, then the image fails
    # The asset check sees the planned image that is not in S3, and names it.
    [stored_check] = [c for c in result.get_asset_check_evaluations() if c.check_name == "every_planned_image_stored"]
    assert stored_check.passed is False
    missing = stored_check.metadata["missing"].value
    assert len(missing) == 1 and "_image_2_" in missing[0] and missing[0] not in kept

    openai_server.reset()
    result = pipeline.run(job.job_id)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"every_planned_image_stored": True, "every_workflow_step_recorded": True}
    assert openai_server.stats()["images"] == 1
    assert len(_image_keys(s3_client, settings.bucket, prefix)) == 3
    row = pipeline.job(job.job_id)
    assert row["status"] == "completed" and "error_message" not in row


def test_invalid_base64_fails_with_clear_message_and_stores_nothing_for_it(pipeline, settings, s3_client):
    job = pipeline.submit(single_image_workflow("Create 2 brand images. [[image1:img-fault:invalid_base64]]"))
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"] == (
        "Step 1 (Brand Images) failed: image 1 (Brand Images 1): the API returned invalid base64 image data"
    )
    keys = _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")
    assert len(keys) == 1 and "_image_2_" in keys[0]


def test_non_image_bytes_are_rejected(pipeline, settings, s3_client):
    job = pipeline.submit(single_image_workflow("Create 1 brand image. [[image1:img-fault:not_image]]"))
    assert not pipeline.run(job.job_id).success
    assert "not a PNG, JPEG or WebP image" in pipeline.job(job.job_id)["error_message"]
    assert _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/") == []


def test_wrong_format_is_converted_to_the_requested_one(pipeline, settings, s3_client, openai_server):
    job = pipeline.submit(single_image_workflow("Create 1 brand image. [[image1:img-fault:wrong_format]]"))
    assert pipeline.run(job.job_id).success
    assert openai_server.stats()["faults"] == {"wrong_format": 1}  # the server answered JPEG bytes for a PNG
    (key,) = _image_keys(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/")
    obj = s3_client.get_object(Bucket=settings.bucket, Key=key)
    assert key.endswith(".png") and obj["ContentType"] == "image/png"
    with Image.open(io.BytesIO(obj["Body"].read())) as image:
        assert (image.format, image.size) == ("PNG", (1024, 1024))
    [image_entry] = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")[1]["images"]
    assert image_entry["converted_from"] == "jpeg" and image_entry["url"].endswith(key)


@pytest.mark.parametrize(
    ("marker", "expected_images", "fallback"),
    [("[[plan:fenced]]", 2, False), ("[[plan:prose]]", 2, False), ("[[plan:empty]]", 1, True), ("[[images:20]]", 12, False)],
)
def test_planner_answers(pipeline, settings, s3_client, marker, expected_images, fallback):
    job = pipeline.submit(single_image_workflow(f"Make brand images. {marker}", quality="low"))
    assert pipeline.run(job.job_id).success
    steps = read_json_object(s3_client, settings.bucket, f"{job.tenant_id}/jobs/{job.job_id}/execution_steps.json")
    assert len(steps[1]["image_urls"]) == expected_images
    assert steps[1]["input"]["planner_fallback"] is fallback


def test_missing_workflow_fails_job_with_clear_message(pipeline, db):
    job = pipeline.submit(mixed_workflow())
    db.get_client().delete_item(TableName=db.workflows_table, Key={"workflow_id": {"S": job.workflow_id}})
    assert not pipeline.run(job.job_id).success
    row = pipeline.job(job.job_id)
    assert row["status"] == "failed"
    assert row["error_message"] == f"Workflow {job.workflow_id} not found"
    assert row["error_type"] == "InvalidJobRecord"


def _watch_job_row(pipeline, job_id: str, stop: threading.Event, seen: list) -> None:
    """What the seed's job page shows while the run goes on: the job row's `live_step`, read every 20 ms."""
    while not stop.wait(0.02):
        row = pipeline.job(job_id) or {}
        live = row.get("live_step")
        if live and (not seen or seen[-1] != (row["status"], live)):
            seen.append((row["status"], live))


def test_live_step_progress_is_written_and_removed(pipeline, openai_server):
    openai_server.configure(response_latency_s=0.4, image_latency_s=0.4)  # each state stays on the row a while
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_watch_job_row, args=(pipeline, job.job_id, stop, seen))
    watcher.start()
    try:
        assert pipeline.run(job.job_id).success
    finally:
        stop.set()
        watcher.join()
    assert seen, "live_step never appeared on the job row"
    assert {status for status, _ in seen} == {"processing"}
    first = seen[0][1]
    assert (first["step_order"], first["status"], first["output_text"]) == (1, "planning", "Planning image prompts...")
    lines = {line for _, live in seen for line in live["output_text"].splitlines()}
    assert "Planned 2 image prompts." in lines
    assert {"Generating image 1/2: Brand Images 1", "Generating image 2/2: Brand Images 2"} <= lines
    assert {"Generated image 1/2: Brand Images 1", "Generated image 2/2: Brand Images 2"} <= lines
    assert "live_step" not in pipeline.job(job.job_id)
