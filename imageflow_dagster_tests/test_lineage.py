"""Thumbnails stored once per image next to it (never as artifacts), and the lineage metadata builders."""

import io
import json
import logging
import re
import threading
import time

from PIL import Image

from imageflow_dagster.assets.lineage import artifacts_listing, lineage_table, thumbnails_markdown
from imageflow_dagster.flow.thumbnails import make_thumbnail, thumbnail_key
from imageflow_dagster.models import Artifact
from imageflow_dagster.models.pipeline import (
    AIGeneration,
    CallUsage,
    GeneratedImage,
    ImagePlan,
    ImageRequest,
    JobIdentity,
    JobPlan,
    StepPlan,
)
from imageflow_dagster_tests.conftest import asset_metadata
from imageflow_dagster_tests.workflows import mixed_workflow, single_image_workflow

MIXED_IMAGES = 5  # mixed_workflow: 3 png 1024x1024 + 2 webp 1536x1024
TWO_IMAGES = 2  # single_image_workflow("Create 2 brand images.")


# ---- thumbnails in a real run


def _image_keys(pipeline, job_id: str) -> list[str]:
    return sorted(a["s3_key"] for a in pipeline.artifacts(job_id) if a["artifact_type"] == "image")


def _thumbnails(s3_client, bucket: str, prefix: str) -> dict[str, dict]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}thumbnails/").get("Contents", [])
    return {o["Key"]: {"etag": o["ETag"], "modified": o["LastModified"]} for o in listed}


def _shown(result) -> tuple[list[str], set[str]]:
    """What the job's `s3_objects` materialization shows: each planned image's outcome (lineage table) and the
    thumbnail URLs it embeds."""
    metadata = asset_metadata(result, "s3_objects")
    outcomes = [record.data["outcome"] for record in metadata["lineage"].records]
    return outcomes, set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", metadata["thumbnails"].value))


def test_each_image_gets_a_small_jpeg_thumbnail_that_is_no_artifact(pipeline, settings, s3_client, openai_server):
    openai_server.configure(image_payload="noise")  # megabyte originals, so "much smaller" means something
    job = pipeline.submit(mixed_workflow())
    result = pipeline.run(job.job_id)
    assert result.success
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    images = _image_keys(pipeline, job.job_id)
    assert len(images) == MIXED_IMAGES

    expected = {thumbnail_key(k) for k in images}
    assert set(_thumbnails(s3_client, settings.bucket, prefix)) == expected
    assert all(k.startswith(f"{prefix}thumbnails/step_") and k.endswith(".jpg") for k in expected)
    s3 = pipeline.resources["s3"]
    assert _shown(result)[1] == {s3.public_url(thumbnail_key(k)) for k in images}
    for key in images:
        original = s3_client.get_object(Bucket=settings.bucket, Key=key)["Body"].read()
        thumb = s3_client.get_object(Bucket=settings.bucket, Key=thumbnail_key(key))
        body = thumb["Body"].read()
        assert thumb["ContentType"] == "image/jpeg"
        with Image.open(io.BytesIO(original)) as big, Image.open(io.BytesIO(body)) as small:
            assert small.format == "JPEG" and max(small.size) == 256
            assert abs(small.width / small.height - big.width / big.height) < 0.02  # aspect kept
        assert len(body) * 20 < len(original)

    # Previews are not artifacts and not part of the execution record.
    assert not [a for a in pipeline.artifacts(job.job_id) if "thumbnails" in a["s3_key"]]
    steps = s3_client.get_object(Bucket=settings.bucket, Key=f"{prefix}execution_steps.json")["Body"].read()
    assert b"thumbnails" not in steps


def test_rerun_keeps_thumbnails_and_restores_a_deleted_one(pipeline, settings, s3_client, openai_server):
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    assert pipeline.run(job.job_id).success
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    before = _thumbnails(s3_client, settings.bucket, prefix)
    assert len(before) == TWO_IMAGES
    deleted = sorted(before)[0]
    s3_client.delete_object(Bucket=settings.bucket, Key=deleted)
    time.sleep(1.1)  # LastModified has one-second resolution: a rewrite now would show
    openai_server.reset()
    result = pipeline.run(job.job_id)
    assert result.success
    assert openai_server.stats()["images"] == 0  # every image reused
    after = _thumbnails(s3_client, settings.bucket, prefix)
    assert set(after) == set(before)
    was, now = before.pop(deleted), after.pop(deleted)
    assert after == before  # same ETag and LastModified: not rewritten
    assert now["modified"] > was["modified"]  # made again, from the stored original
    restored = s3_client.get_object(Bucket=settings.bucket, Key=deleted)["Body"].read()
    with Image.open(io.BytesIO(restored)) as image:
        assert image.format == "JPEG" and max(image.size) == 256
    assert len(_shown(result)[1]) == TWO_IMAGES


def test_thumbnail_that_cannot_be_stored_never_fails_its_image(pipeline, settings, s3_client):
    job = pipeline.submit(single_image_workflow("Create 2 brand images."))
    prefix = f"{job.tenant_id}/jobs/{job.job_id}/"
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{settings.bucket}/{prefix}thumbnails/*",
            }
        ],
    }
    s3_client.put_bucket_policy(Bucket=settings.bucket, Policy=json.dumps(deny))
    runs = []
    try:
        # First run: images generated, their thumbnails refused. Second: images reused, thumbnails made
        # from the originals read back, refused again.
        for _ in range(2):
            result = pipeline.run(job.job_id)
            runs.append((result, *_shown(result)))
    finally:
        s3_client.delete_bucket_policy(Bucket=settings.bucket)
    assert [outcomes for _, outcomes, _ in runs] == [["generated"] * TWO_IMAGES, ["reused"] * TWO_IMAGES]
    for result, _, urls in runs:
        assert result.success
        assert urls == set()
        logs = pipeline.instance.all_logs(result.run_id)
        logged = [e.user_message for e in logs if e.level == logging.WARNING]
        assert sum("thumbnail not stored" in m and "AccessDenied" in m for m in logged) == TWO_IMAGES
    assert pipeline.job(job.job_id)["status"] == "completed"
    assert len(_image_keys(pipeline, job.job_id)) == TWO_IMAGES
    assert _thumbnails(s3_client, settings.bucket, prefix) == {}

    result = pipeline.run(job.job_id)  # allowed again: every reused image gets its thumbnail
    assert result.success and len(_shown(result)[1]) == TWO_IMAGES
    assert len(_thumbnails(s3_client, settings.bucket, prefix)) == TWO_IMAGES


def test_thumbnail_of_an_image_another_writer_stored_first_shows_their_bytes(pipeline, settings, s3_client, openai_server):
    """The run's create-only put of the image loses the race: its thumbnail must show what is stored."""
    job = pipeline.submit(single_image_workflow("Create 1 brand image."))
    assert pipeline.run(job.job_id).success
    [key] = _image_keys(pipeline, job.job_id)
    s3_client.delete_objects(  # the rerun renders the image again
        Bucket=settings.bucket, Delete={"Objects": [{"Key": key}, {"Key": thumbnail_key(key)}]}
    )
    openai_server.reset()
    openai_server.configure(image_latency_s=3.0)  # the window in which the other writer gets there first
    theirs = io.BytesIO()
    Image.new("RGB", (40, 20), (255, 0, 255)).save(theirs, "PNG")
    first = []

    def other_writer() -> None:
        while not openai_server.requests("images"):
            time.sleep(0.01)
        s3_client.put_object(Bucket=settings.bucket, Key=key, Body=theirs.getvalue(), IfNoneMatch="*")
        first.append(True)

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        result = pipeline.run(job.job_id)
    finally:
        writer.join(timeout=60)
    # Rendered by the run, stored by the other writer.
    assert result.success and first and _shown(result)[0] == ["generated"]
    body = s3_client.get_object(Bucket=settings.bucket, Key=thumbnail_key(key))["Body"].read()
    with Image.open(io.BytesIO(body)) as thumb:
        assert thumb.size == (40, 20)  # theirs, not the run's 1024x1024
        red, green, blue = thumb.getpixel((20, 10))
        assert red > 200 and green < 60 and blue > 200


# ---- thumbnails, unit


def test_thumbnail_key_stays_in_the_job_prefix():
    key = "t1/jobs/j1/step_2_image_1_abc.png"
    assert thumbnail_key(key) == "t1/jobs/j1/thumbnails/step_2_image_1_abc.jpg"
    assert thumbnail_key("t1/jobs/j1/a.b.webp") == "t1/jobs/j1/thumbnails/a.b.jpg"


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_make_thumbnail_fits_keeps_aspect_and_flattens_transparency_on_white():
    wide = Image.new("RGBA", (1000, 500), (0, 0, 255, 0))  # fully transparent blue
    wide.paste((255, 0, 0, 255), (400, 200, 600, 300))
    with Image.open(io.BytesIO(make_thumbnail(_encoded(wide, "PNG")))) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("JPEG", "RGB", (256, 128))
        assert min(thumb.getpixel((2, 2))) > 240  # white, not the blue hidden under alpha 0
        red = thumb.getpixel((128, 64))
        assert red[0] > 200 and red[2] < 60
    palette = Image.new("P", (300, 600), 3)
    with Image.open(io.BytesIO(make_thumbnail(_encoded(palette, "PNG"), max_px=100))) as thumb:
        assert (thumb.mode, thumb.size) == ("RGB", (50, 100))
    small = Image.new("RGB", (120, 80), (10, 200, 10))
    with Image.open(io.BytesIO(make_thumbnail(_encoded(small, "WEBP")))) as thumb:
        assert thumb.size == (120, 80)  # never enlarged


# ---- lineage metadata, unit

JOB = JobIdentity(job_id="job1", tenant_id="t1", workflow_id="wf1", submission_id="sub1")
LONG_PROMPT = "A lighthouse at dusk, " * 20 + "END-OF-PROMPT"
CDN = "https://cdn.example.com"


def _request(step_index: int, index: int, label: str, prompt: str = "a prompt") -> ImageRequest:
    key = f"{JOB.prefix}/step_{step_index + 1}_image_{index}_h{index}.png"
    return ImageRequest(
        step_index=step_index,
        index=index,
        label=label,
        prompt=prompt,
        model="gpt-image-2.6-sunburst",
        path="images_api",
        api_params={"size": "1024x1024"},
        output_format="png",
        key=key,
        url=f"{CDN}/{key}",
        request_hash=f"h{index}",
    )


def _image(request: ImageRequest, outcome: str, **fields) -> GeneratedImage:
    return GeneratedImage(request=request, outcome=outcome, **fields)


def _thumb_url(request: ImageRequest) -> str:
    return f"{CDN}/{thumbnail_key(request.key)}"


def _plan() -> tuple[JobPlan, list[GeneratedImage]]:
    logo = _request(1, 1, "Logo", LONG_PROMPT)
    banner = _request(1, 2, "Banner | wide]\nversion")
    unsafe = _request(1, 3, "Unsafe")
    broken = _request(1, 4, "Broken")
    brand = StepPlan(
        index=1,
        number=2,
        name="Brand Images",
        kind="image",
        ai=AIGeneration(model="gpt-5.2"),
        image=ImagePlan(
            model="gpt-image-2.6-sunburst",
            requested_model="gpt-image-2-retired",
            requests=[logo, banner, unsafe, broken],
        ),
    )
    steps = [
        StepPlan(
            index=0,
            number=1,
            name="Research",
            kind="text",
            ai=AIGeneration(model="gpt-5.2"),
            output_text="# notes",
        ),
        brand,
        # A step that failed in planning: even a request it kept was never sent, so it has no row.
        StepPlan(
            index=2,
            number=3,
            name="Social",
            kind="image",
            ai=AIGeneration(model="gpt-5.2"),
            status="failed",
            error="planner down",
            image=ImagePlan(requests=[_request(2, 1, "Never sent")]),
        ),
    ]
    generated = [
        _image(
            logo,
            "generated",
            size_bytes=12345,
            model="gpt-image-2.7",
            usage=CallUsage(model="gpt-image-2.7", cost_usd=0.0123),
            thumbnail_url=_thumb_url(logo),
        ),
        _image(banner, "reused", size_bytes=999, thumbnail_url=_thumb_url(banner)),
        _image(unsafe, "blocked", error="moderation_blocked: unsafe content", error_type="ModerationBlocked"),
        _image(broken, "failed", error="OpenAI error 500", error_type="InternalServerError"),
    ]
    plan = JobPlan(job=JOB, submission_fields={"Name": "Ada"}, steps=steps, started_at="2026-01-01T00:00:00Z")
    return plan, generated


def test_lineage_table_has_one_full_row_per_planned_image():
    plan, generated = _plan()
    logo, banner, unsafe, broken = (g.request for g in generated)
    table = lineage_table(plan, generated, {logo.key: "art_logo"})
    assert [c.name for c in table.schema.columns] == [
        "step",
        "label",
        "prompt",
        "requested_model",
        "model_used",
        "outcome",
        "error",
        "cost_usd",
        "bytes",
        "artifact_id",
        "url",
    ]
    rows = [r.data for r in table.records]
    # No row for the text step, nor for the image step that failed in planning.
    assert [r["label"] for r in rows] == ["Logo", "Banner | wide]\nversion", "Unsafe", "Broken"]
    first = rows[0]
    assert len(LONG_PROMPT) > 300 and first["prompt"] == LONG_PROMPT
    assert first == {
        "step": "2. Brand Images",
        "label": "Logo",
        "prompt": LONG_PROMPT,
        "requested_model": "gpt-image-2-retired",
        "model_used": "gpt-image-2.7",
        "outcome": "generated",
        "error": "",
        "cost_usd": 0.0123,
        "bytes": 12345,
        "artifact_id": "art_logo",
        "url": logo.url,
    }
    assert (rows[1]["outcome"], rows[1]["model_used"], rows[1]["artifact_id"]) == ("reused", banner.model, "")
    assert isinstance(rows[1]["cost_usd"], float) and rows[1]["bytes"] == 999
    assert (rows[2]["outcome"], rows[2]["error"]) == ("blocked", "moderation_blocked: unsafe content")
    assert (rows[3]["outcome"], rows[3]["error"]) == ("failed", "OpenAI error 500")
    assert [r["url"] for r in rows] == [logo.url, banner.url, unsafe.url, broken.url]


def test_lineage_table_shows_a_planned_image_without_a_record_as_missing():
    plan, generated = _plan()
    table = lineage_table(plan, generated[:1], {})
    assert [r.data["outcome"] for r in table.records] == ["generated", "missing", "missing", "missing"]


def test_thumbnails_markdown_embeds_only_thumbnails_with_escaped_captions():
    plan, generated = _plan()
    text = thumbnails_markdown(plan, generated).value
    logo, banner = generated[0].request, generated[1].request
    assert f"![Logo]({_thumb_url(logo)})" in text
    assert f"![Banner \\| wide\\] version]({_thumb_url(banner)})" in text
    assert "**Step 2** · Logo" in text
    for g in generated:
        assert g.request.url not in text  # no original is ever the image source
    assert "Unsafe" not in text and "Broken" not in text
    assert "wide]\n" not in text and "| wide" not in text.replace("\\|", "")


def test_thumbnails_markdown_without_thumbnails():
    plan, generated = _plan()
    bare = [g.model_copy(update={"thumbnail_url": None}) for g in generated]
    assert thumbnails_markdown(plan, bare).value == "_no images_"


def test_artifacts_listing_names_each_row():
    rows = [
        Artifact(
            artifact_id=f"art_{n}",
            tenant_id="t1",
            job_id="job1",
            artifact_type=kind,
            artifact_name=name,
            s3_key=f"t1/jobs/job1/{name}",
            s3_url=f"s3://bucket/t1/jobs/job1/{name}",
            public_url=f"{CDN}/t1/jobs/job1/{name}",
            is_public=True,
            file_size_bytes=10,
            mime_type="image/png",
            created_at="2026-01-01T00:00:00Z",
        )
        for n, kind, name in (
            (1, "image", "step_2_image_1_h1.png"),
            (2, "step_output", "step_2_brand_images.json"),
        )
    ]
    table = artifacts_listing(rows)
    columns = ["artifact_id", "artifact_type", "artifact_name", "s3_key", "public_url"]
    assert [c.name for c in table.schema.columns] == columns
    assert [r.data for r in table.records] == [
        {
            "artifact_id": "art_1",
            "artifact_type": "image",
            "artifact_name": "step_2_image_1_h1.png",
            "s3_key": "t1/jobs/job1/step_2_image_1_h1.png",
            "public_url": f"{CDN}/t1/jobs/job1/step_2_image_1_h1.png",
        },
        {
            "artifact_id": "art_2",
            "artifact_type": "step_output",
            "artifact_name": "step_2_brand_images.json",
            "s3_key": "t1/jobs/job1/step_2_brand_images.json",
            "public_url": f"{CDN}/t1/jobs/job1/step_2_brand_images.json",
        },
    ]
    assert artifacts_listing([]).records == []
