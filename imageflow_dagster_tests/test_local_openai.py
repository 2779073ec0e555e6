"""The local OpenAI-compatible server against the official SDK with strict response validation."""

import base64
import io
import json
import subprocess
import sys
import time
import urllib.request

import openai
import pytest
from openai.types.responses.response_output_item import ImageGenerationCall
from PIL import Image

from imageflow_dagster.flow.planner import PLAN_SCHEMA
from imageflow_dagster.local.openai_control import OpenAIServerControl
from imageflow_dagster.local.openai_server import LocalOpenAIServer


@pytest.fixture(scope="module")
def server():
    with LocalOpenAIServer() as running:
        yield running


@pytest.fixture
def client(server):
    server.reset()
    server.configure(image_latency_s=0.0, response_latency_s=0.0, timeout_fault_s=5.0)
    with openai.OpenAI(api_key="test-key", base_url=server.base_url, _strict_response_validation=True, max_retries=2) as sdk:
        yield sdk


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_images_png_square(client):
    result = client.images.generate(model="gpt-image-1.5", prompt="a red fox", size="1024x1024", quality="low")
    image = _image(result.data[0].b64_json)
    assert (image.format, image.size) == ("PNG", (1024, 1024))
    assert result.usage.output_tokens == 272 and result.size == "1024x1024" and result.output_format == "png"


def test_images_formats_sizes_and_n(client):
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


def test_500_then_success_is_retried_by_the_sdk(client, server):
    result = client.images.generate(model="gpt-image-1.5", prompt="x [[img-fault:500x2]]")
    assert result.data[0].b64_json
    assert [r["retry_count"] for r in server.requests("images")] == [0, 1, 2]


def test_500_outliving_retries_raises(server):
    server.reset()
    with openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=1) as sdk, pytest.raises(openai.InternalServerError):
        sdk.images.generate(model="gpt-image-1.5", prompt="y [[img-fault:500]]")
    assert len(server.requests("images")) == 2


def test_429_honours_retry_after_quickly(client, server):
    started = time.monotonic()
    client.images.generate(model="gpt-image-1.5", prompt="z [[img-fault:429x1]]")
    assert time.monotonic() - started < 2.0  # retry-after-ms: 50, not the SDK's backoff
    assert server.stats()["faults"] == {"429": 1}


def test_moderation_is_not_retried(client, server):
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="gpt-image-1.5", prompt="m [[img-fault:moderation]]")
    assert raised.value.code == "moderation_blocked"
    assert len(server.requests("images")) == 1


def test_timeout(server):
    server.configure(timeout_fault_s=1.0)
    with openai.OpenAI(api_key="k", base_url=server.base_url, timeout=0.3, max_retries=0) as sdk:
        with pytest.raises(openai.APITimeoutError):
            sdk.images.generate(model="gpt-image-1.5", prompt="t [[img-fault:timeout]]")


@pytest.mark.parametrize(("fault", "expected"), [("invalid_base64", "@@not-base64@@"), ("not_image", None)])
def test_bad_payloads_are_200(client, fault, expected):
    b64 = client.images.generate(model="gpt-image-1.5", prompt=f"b [[img-fault:{fault}]]").data[0].b64_json
    if expected:
        assert b64 == expected
    else:
        assert base64.b64decode(b64) == b"hello, this is not an image"


def test_rule_based_fault_applies_the_given_number_of_times(client, server):
    server.add_fault(endpoint="images", match="target", fault="500", times=1)
    client.images.generate(model="gpt-image-1.5", prompt="the target prompt")
    assert [r["status"] for r in server.requests("images")] == [500, 200]


def test_control_api_over_http(server, client):
    control = OpenAIServerControl(server.base_url)
    control.reset()
    control.configure(image_latency_s=0.01)
    control.add_fault(endpoint="images", match="control-q", fault="500", times=1)
    assert control.stats() == {"images": 0, "responses": 0, "attempts": 0, "faults": {}}
    statuses = lambda: [r["status"] for r in control.requests("images") if r["prompt"] == "control-q"]  # noqa: E731
    client.images.generate(model="gpt-image-1.5", prompt="control-q")
    assert statuses() == [500, 200]
    control.clear_faults()
    client.images.generate(model="gpt-image-1.5", prompt="control-q")
    assert statuses() == [500, 200, 200]
    control.configure(image_latency_s=0.0)


def test_cli_serves_and_stops_on_sigterm():
    process = subprocess.Popen(
        [sys.executable, "-m", "imageflow_dagster.local.openai_server", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        assert json.loads(urllib.request.urlopen(base_url.removesuffix("/v1") + "/_local/stats").read())["images"] == 0
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
