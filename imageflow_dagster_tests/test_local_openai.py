"""The local OpenAI-compatible server against the official SDK with strict response validation: only what the
pipeline relies on. Covered elsewhere, through real runs: counted 500 and timeout faults (test_faults.py),
bad payloads and moderation (test_pipeline.py), the server's CLI flags and SIGTERM (test_local_stack.py),
bursts against both rate-limit algorithms through the daemon (test_rate_limit_burst.py)."""

import base64
import io
import json

import openai
import pytest
from openai.types.responses.response_output_item import ImageGenerationCall
from PIL import Image

from imageflow_dagster.flow.image_planner import PLAN_SCHEMA
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.openai_server import LocalOpenAIServer
from imageflow_dagster.resources.openai_retry import retry_after_s


@pytest.fixture(scope="module")
def server():
    with LocalOpenAIServer() as running:
        yield running


@pytest.fixture
def client(server):
    server.reset()
    server.configure(image_latency_s=0.0, response_latency_s=0.0)
    server.configure(images_per_minute=0, shut_down_models=[], quota_exhausted=False)
    server.configure(rate_limit_algorithm="token_bucket", refused_calls_count=False, rate_limit_per_model=False)
    # As the pipeline's client: the SDK's own retries are off (openai_retry.CallPolicy decides).
    sdk = openai.OpenAI(api_key="test-key", base_url=server.base_url, _strict_response_validation=True, max_retries=0)
    with sdk:
        yield sdk


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_images_formats_sizes_and_n(client):
    result = client.images.generate(model="gpt-image-1.5", prompt="a red fox", size="1024x1024", quality="low")
    png = _image(result.data[0].b64_json)
    assert (png.format, png.size) == ("PNG", (1024, 1024))
    assert result.usage.output_tokens == 272 and result.size == "1024x1024" and result.output_format == "png"
    webp = client.images.generate(model="gpt-image-1.5", prompt="p", output_format="webp", output_compression=80, n=2)
    assert len(webp.data) == 2 and _image(webp.data[1].b64_json).format == "WEBP"
    jpeg = client.images.generate(model="gpt-image-1.5", prompt="p", output_format="jpeg", size="1536x1024", quality="high")
    assert _image(jpeg.data[0].b64_json).size == (1536, 1024) and jpeg.usage.output_tokens == 6208


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_format": "b64_json"}, openai.BadRequestError),
        ({"output_format": "webp", "output_compression": 80.0}, openai.BadRequestError),
        ({"output_compression": 80}, openai.BadRequestError),  # png
        ({"background": "transparent", "output_format": "jpeg"}, openai.BadRequestError),
        ({"model": "dall-e-9"}, openai.NotFoundError),
    ],
)
def test_images_validation_errors(client, params, error):
    with pytest.raises(error):
        client.images.generate(**{"model": "gpt-image-1.5", "prompt": "p", **params})


def test_responses_planner_with_json_schema(client):
    response = client.responses.create(
        model="gpt-5.2",
        instructions="Plan images.",
        input="Step Name: Brand\n\nMake things. [[images:3]]",
        text={"format": PLAN_SCHEMA},
    )
    plan = json.loads(response.output_text)
    assert [i["label"] for i in plan["images"]] == ["Brand 1", "Brand 2", "Brand 3"]
    assert response.output[0].type == "reasoning" and response.usage.input_tokens > 0


@pytest.mark.parametrize(
    ("marker", "check"),
    [
        ("[[plan:fenced]]", lambda t: t.startswith("```json")),
        ("[[plan:prose]]", lambda t: t.startswith("Here is the plan:")),
        ("[[plan:empty]]", lambda t: json.loads(t) == {"images": []}),
        ("[[plan:garbage]]", lambda t: "{" not in t),
    ],
)
def test_responses_planner_shapes(client, marker, check):
    response = client.responses.create(model="gpt-5.2", instructions="Answer in JSON.", input=f"4 brand images {marker}")
    assert check(response.output_text)


def test_planner_count_from_words_and_per_image_injection(client):
    text = client.responses.create(
        model="gpt-5.2", instructions="JSON", input="Create 4 brand images. [[image3:img-fault:500]]"
    ).output_text
    prompts = [i["prompt"] for i in json.loads(text)["images"]]
    assert len(prompts) == 4 and prompts[2].endswith("[[img-fault:500]]") and "[[" not in prompts[0]


def test_responses_text(client):
    response = client.responses.create(model="gpt-5.2", instructions="Write.", input="Step Name: Research\nabout Acme")
    assert response.output_text.startswith("# Research")


def test_responses_image_tool(client):
    response = client.responses.create(
        model="gpt-5.2",
        input="draw a mascot",
        tools=[{"type": "image_generation", "output_format": "webp", "size": "1024x1536"}],
        tool_choice={"type": "image_generation"},
    )
    call = next(item for item in response.output if item.type == "image_generation_call")
    assert isinstance(call, ImageGenerationCall)
    assert _image(call.result).size == (1024, 1536) and _image(call.result).format == "WEBP"
    assert response.tool_usage.image_gen.output_tokens == 1584


def test_429_fault_asks_for_50_ms_in_the_headers_the_pipeline_reads(client, server):
    with pytest.raises(openai.RateLimitError) as raised:
        client.images.generate(model="gpt-image-1.5", prompt="z [[img-fault:429x1]]")
    assert raised.value.code == "rate_limit_exceeded"
    assert raised.value.response.headers["retry-after-ms"] == "50"
    assert retry_after_s(raised.value) == 0.05  # the wait imageflow takes, not the SDK's backoff
    assert client.images.generate(model="gpt-image-1.5", prompt="z [[img-fault:429x1]]").data[0].b64_json
    assert [r["status"] for r in server.requests("images")] == [429, 200]
    assert server.stats()["faults"] == {"429": 1}


def test_control_api_over_http(server, client):
    """What the dev stack, the burst tests and the benchmarks drive in another process."""
    control = OpenAIServerControl(server.base_url)
    client.images.generate(model="gpt-image-1.5", prompt="before the reset")
    control.reset()
    stats = control.stats()
    assert (stats["images"], stats["responses"], stats["attempts"], stats["faults"]) == (0, 0, 0, {})
    assert control.requests() == []
    control.add_fault(endpoint="images", match="control-q", fault="500")  # every matching call, until cleared
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.images.generate(model="gpt-image-1.5", prompt="control-q")
    control.clear_faults()
    client.images.generate(model="gpt-image-1.5", prompt="control-q")
    assert [r["status"] for r in control.requests("images")] == [500, 500, 200]
    assert control.stats()["faults"] == {"500": 2}
    control.configure(shut_down_models=["gpt-image-1-mini"])
    with pytest.raises(openai.NotFoundError):
        client.images.generate(model="gpt-image-1-mini", prompt="gone")
    with pytest.raises(ValueError, match="images_per_minute"):
        control.configure(images_per_minute=-1)
    control.configure(images_per_minute=24, rate_limit_algorithm="rolling_window", refused_calls_count=True)
    assert control.stats()["rate_limit"] == {
        "images_per_minute": 24.0,
        "rate_limit_algorithm": "rolling_window",
        "refused_calls_count": True,
        "rate_limit_per_model": False,
    }
    with pytest.raises(ValueError, match="rate_limit_algorithm"):
        control.configure(rate_limit_algorithm="leaky_bucket")


# ---------------------------------------------------------------- per-model validation (limits: test_local_openai_limits.py)
def _tool_call(sdk: openai.OpenAI, main_model: str = "gpt-5.2", **tool):
    tool = {"type": "image_generation", "size": "1024x1024", **tool}
    return sdk.responses.create(model=main_model, input="draw", tools=[tool], tool_choice={"type": "image_generation"})


def test_gpt_image_2_custom_size(client):
    result = client.images.generate(model="gpt-image-2.6-sunburst", prompt="wide", size="2048x1152", quality="low")
    assert _image(result.data[0].b64_json).size == (2048, 1152) and result.size == "2048x1152"
    assert result.usage.output_tokens == round(272 * 2048 * 1152 / (1024 * 1024))
    tool = _tool_call(client, size="1152x2048", model="gpt-image-2.5-flare", quality="xhigh")
    call = next(item for item in tool.output if item.type == "image_generation_call")
    assert _image(call.result).size == (1152, 2048) and call.quality == "xhigh"


@pytest.mark.parametrize(
    ("model", "params", "param", "message"),
    [
        ("gpt-image-2", {"size": "1000x1000"}, "size", "Width and height must both be divisible by 16."),
        ("gpt-image-1.5", {"size": "2048x1152"}, "size", "Invalid value: '2048x1152'. Supported values are: "),
        ("gpt-image-2.6-sunburst", {"size": "4000x400"}, "size", "aspect ratio"),
        ("gpt-image-2.6-sunburst", {"size": "3840x2560"}, "size", "at most 8294400 pixels"),
        ("gpt-image-2.6-flare", {"quality": "xhigh"}, "quality", "Invalid value: 'xhigh'."),
        ("gpt-image-1-mini", {"quality": "max"}, "quality", "Invalid value: 'max'."),
    ],
)
def test_sizes_and_qualities_are_checked_per_model(client, model, params, param, message):
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model=model, prompt="p", **params)
    assert raised.value.param == param and raised.value.code == "invalid_value" and message in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised:
        _tool_call(client, model=model, **params)
    assert raised.value.param == param
