"""Pure functions of the flow: plan parsing, ids, dependency order, image bytes."""

import base64
import io
import json
from decimal import Decimal

import pytest
from PIL import Image

from imageflow_dagster.flow.errors import BadRecordError
from imageflow_dagster.flow.image_data import InvalidImageData, decode_base64, read_image, sniff_format
from imageflow_dagster.flow.image_requests import images_api_params
from imageflow_dagster.flow.ordering import resolve_dependencies, waves
from imageflow_dagster.flow.image_planner import IMAGE_PROMPT_LIMIT, fallback_plan, parse_plan
from imageflow_dagster.ids import InvalidIdError, stable_id, validate_id
from imageflow_dagster.models.workflow import ImageToolConfig, WorkflowStep

PLAN = {"images": [{"label": "Logo", "prompt": "A logo"}, {"label": "Banner", "prompt": "A banner"}]}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(PLAN),
        "```json\n" + json.dumps(PLAN) + "\n```",
        "Sure! Here is the plan:\n" + json.dumps(PLAN) + "\nEnjoy.",
        '{"note": "first object without images"} then ' + json.dumps(PLAN),
    ],
)
def test_parse_plan_accepts_json_fenced_and_prose(text):
    assert [(p.label, p.prompt) for p in parse_plan(text, 12)] == [("Logo", "A logo"), ("Banner", "A banner")]


def test_parse_plan_caps_drops_blank_prompts_and_names_missing_labels():
    items = [{"label": "", "prompt": f"p{i}"} for i in range(20)]
    items.insert(1, {"label": "blank", "prompt": "   "})
    plan = parse_plan(json.dumps({"images": items}), 12)
    assert len(plan) == 12
    assert [p.label for p in plan[:3]] == ["image_1", "image_2", "image_3"]
    assert all(p.prompt.strip() for p in plan)


@pytest.mark.parametrize("text", ["", "no json here", '{"images": []}', '{"images": "nope"}', "[1, 2]"])
def test_parse_plan_returns_nothing_for_unusable_answers(text):
    assert parse_plan(text, 12) == []


def test_fallback_prompt_is_cut_to_the_images_api_limit():
    (only,) = fallback_plan("Brand", "x" * 40_000, "context")
    assert only.label == "Brand" and len(only.prompt) == IMAGE_PROMPT_LIMIT


@pytest.mark.parametrize("bad", ["a/b", "..", "x..y", "tab\there", "", "a,b", " lead", "x" * 200, 7, None])
def test_validate_id_rejects_unsafe_values(bad):
    with pytest.raises(InvalidIdError):
        validate_id("job_id", bad)


def test_stable_ids_are_deterministic_and_ulid_shaped():
    first = stable_id("art", "job_1", "key")
    assert first == stable_id("art", "job_1", "key") != stable_id("art", "job_1", "other")
    assert first.startswith("art_") and len(first) == 30


def _steps(*specs) -> list[WorkflowStep]:
    return [WorkflowStep(step_name=f"s{i}", **spec) for i, spec in enumerate(specs)]


def test_dependencies_accept_ints_strings_and_decimals_and_match_step_order_first():
    steps = _steps({"step_order": 10}, {"step_order": "20", "depends_on": [Decimal(10)]}, {"step_order": 30, "depends_on": ["0"]})
    assert resolve_dependencies(steps) == {0: [], 1: [0], 2: [0]}
    assert waves(resolve_dependencies(steps), steps) == [[0], [1, 2]]


def test_missing_depends_on_means_every_earlier_step():
    steps = _steps({"step_order": 2}, {"step_order": 1}, {"step_order": 3})
    assert resolve_dependencies(steps) == {1: [], 0: [1], 2: [1, 0]}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (({"depends_on": [1]}, {"depends_on": [0]}), "cycle among steps 1 (s0), 2 (s1)"),
        (({"depends_on": [0]},), "depends on itself"),
        (({"depends_on": [7]},), "depends on unknown step 7"),
    ],
)
def test_invalid_dependencies_are_rejected(specs, message):
    with pytest.raises(BadRecordError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_dependencies(_steps(*specs))


def test_images_api_params_send_only_what_is_set():
    assert images_api_params(ImageToolConfig()) == {}
    tool = ImageToolConfig(size="1536x1024", quality="high", background="auto", format="webp", compression=Decimal("80"))
    assert images_api_params(tool) == {"size": "1536x1024", "quality": "high", "output_format": "webp", "output_compression": 80}
    assert "output_compression" not in images_api_params(ImageToolConfig(format="png", compression=80))


def _encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), "red").save(out, fmt)
    return out.getvalue()


def test_image_bytes_are_identified_by_magic_and_converted_when_needed():
    png, jpeg, webp = _encoded("PNG"), _encoded("JPEG"), _encoded("WEBP")
    assert [sniff_format(b) for b in (png, jpeg, webp, b"GIF89a")] == ["png", "jpeg", "webp", None]
    same = read_image(png, "png")
    assert (same.format, same.width, same.height, same.converted_from) == ("png", 8, 6, None)
    converted = read_image(jpeg, "png")
    assert converted.converted_from == "jpeg" and sniff_format(converted.data) == "png"


def test_strict_base64_and_corrupt_images_are_rejected():
    with pytest.raises(InvalidImageData, match="invalid base64"):
        decode_base64("@@not-base64@@")
    assert decode_base64(base64.b64encode(b"abc").decode()) == b"abc"
    with pytest.raises(InvalidImageData, match="not a PNG"):
        read_image(b"hello", "png")
    with pytest.raises(InvalidImageData, match="corrupt PNG"):
        read_image(_encoded("PNG")[:30], "png")
