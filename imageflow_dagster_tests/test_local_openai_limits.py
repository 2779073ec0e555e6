"""The local OpenAI server's account limits against the official SDK: images per minute by a token bucket or a
rolling minute, refused calls counted or not, one limit for all models or one per model, OpenAI's 429 body and
headers; shut-down models and an exhausted quota. Time is a fake clock."""

import openai
import pytest

from imageflow_dagster.local.openai_server import LocalOpenAIServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def limited():
    """A server limited to 30 images per minute on a fake clock, and a client that does not retry."""
    clock = FakeClock()
    with LocalOpenAIServer(images_per_minute=30, clock=clock) as running:
        with openai.OpenAI(api_key="k", base_url=running.base_url, max_retries=0, _strict_response_validation=True) as sdk:
            yield running, sdk, clock


def _draw(sdk: openai.OpenAI, model: str = "gpt-image-1.5", **params):
    return sdk.images.with_raw_response.generate(model=model, prompt="p", quality="low", **params)


def _tool_call(sdk: openai.OpenAI, main_model: str = "gpt-5.2", **tool):
    tool = {"type": "image_generation", "size": "1024x1024", **tool}
    return sdk.responses.create(model=main_model, input="draw", tools=[tool], tool_choice={"type": "image_generation"})


def test_bucket_allows_capacity_then_refills_with_the_clock(limited):
    server, sdk, clock = limited
    first = _draw(sdk)
    assert first.headers["x-ratelimit-limit-images"] == "30"
    assert first.headers["x-ratelimit-remaining-images"] == "29"
    assert first.headers["x-ratelimit-reset-images"] == "2s"  # one image back at 0.5 per second
    _draw(sdk, n=10)
    _tool_call(sdk)  # an image tool call counts as one image
    sdk.responses.create(model="gpt-5.2", input="no tool, no budget")
    for _ in range(18):
        _draw(sdk)
    with pytest.raises(openai.RateLimitError) as raised:  # 30 taken: the 31st is refused
        _draw(sdk)
    assert raised.value.code == "rate_limit_exceeded" and raised.value.type == "images"
    clock.now += 60 / 30
    _draw(sdk)
    with pytest.raises(openai.RateLimitError):
        _tool_call(sdk)
    assert server.stats()["rate_limited"] == 2 and server.stats()["images"] == 21


def test_rate_limit_429_has_openais_body_and_headers(limited):
    server, sdk, clock = limited
    _draw(sdk, n=10)
    _draw(sdk, n=10)
    _draw(sdk, n=10)
    clock.now += 1.234  # 0.617 images back: 0.383 missing at 0.5 per second
    with pytest.raises(openai.RateLimitError) as raised:
        _draw(sdk)
    error = raised.value
    assert error.body == {
        "message": "Rate limit reached for gpt-image-1.5 in organization org-local on images per minute (IPM): "
        "Limit 30, Used 30, Requested 1. Please try again in 766ms. "
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
        "type": "images",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    headers = error.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("1", "766")
    assert headers["x-ratelimit-limit-images"] == "30" and headers["x-ratelimit-remaining-images"] == "0"
    assert headers["x-ratelimit-reset-images"] == "58.766s"
    with pytest.raises(openai.RateLimitError) as raised:
        _draw(sdk, n=3)
    assert "Requested 3. Please try again in 4.766s." in raised.value.message
    assert raised.value.response.headers["retry-after"] == "5"
    server.reset()  # refills the bucket
    assert _draw(sdk, n=10).headers["x-ratelimit-remaining-images"] == "20"


def test_rolling_window_frees_images_a_minute_after_they_came(limited):
    server, sdk, clock = limited
    server.configure(rate_limit_algorithm="rolling_window")  # 30 in any 60 s; the whole limit free
    _draw(sdk, n=10)
    clock.now += 20
    _draw(sdk, n=10)
    last = _draw(sdk, n=10)
    assert last.headers["x-ratelimit-remaining-images"] == "0"
    assert last.headers["x-ratelimit-reset-images"] == "1m0s"  # when the newest images leave the window
    clock.now += 30  # a bucket would have refilled 15 images by now; the window has freed none
    with pytest.raises(openai.RateLimitError) as raised:
        _draw(sdk)
    assert "Limit 30, Used 30, Requested 1. Please try again in 10s." in raised.value.message
    assert (raised.value.response.headers["retry-after"], raised.value.response.headers["retry-after-ms"]) == (
        "10", "10000",  # when the first 10 leave
    )
    clock.now += 10
    assert _draw(sdk, n=10).headers["x-ratelimit-remaining-images"] == "0"
    assert server.stats()["rate_limited"] == 1 and server.stats()["images"] == 4


def test_refused_calls_count_against_the_limit_when_asked(limited):
    server, sdk, clock = limited
    server.configure(refused_calls_count=True)  # a token bucket of 30, refilled at 0.5 per second
    for _ in range(3):
        _draw(sdk, n=10)
    clock.now += 1.0  # half an image back
    waits = []
    for _ in range(2):  # retrying at once digs deeper: each refusal takes its image too
        with pytest.raises(openai.RateLimitError) as raised:
            _draw(sdk)
        waits.append(raised.value.response.headers["retry-after-ms"])
        clock.now += 1.0
    assert waits == ["3000", "4000"]  # 1.5 then 2 images short
    clock.now += 3.0
    assert _draw(sdk).headers["x-ratelimit-remaining-images"] == "0"

    server.configure(rate_limit_algorithm="rolling_window")  # a refused call stays in the window for its minute
    for n in (10, 10, 9):
        _draw(sdk, n=n)
    clock.now += 1
    with pytest.raises(openai.RateLimitError):
        _draw(sdk, n=2)
    clock.now += 59  # the 29 served have left; the 2 refused have not
    assert _draw(sdk, n=10).headers["x-ratelimit-remaining-images"] == "18"


def test_each_model_has_its_own_limit_when_asked(limited):
    server, sdk, _ = limited
    server.configure(rate_limit_per_model=True)
    for _ in range(3):
        _draw(sdk, n=10)
    with pytest.raises(openai.RateLimitError):
        _draw(sdk)
    assert _draw(sdk, model="gpt-image-2").headers["x-ratelimit-remaining-images"] == "29"
    _tool_call(sdk, model="gpt-image-2")  # the image tool's model, whatever the main model
    assert _draw(sdk, model="gpt-image-2").headers["x-ratelimit-remaining-images"] == "27"
    server.configure(rate_limit_per_model=False)  # one limit for all models again, all of it free
    assert _draw(sdk).headers["x-ratelimit-remaining-images"] == "29"


def test_shut_down_models_answer_404_before_the_rate_limit(limited):
    server, sdk, _ = limited
    server.configure(images_per_minute=1, shut_down_models=["gpt-image-1", "gpt-4o-old"])
    with pytest.raises(openai.NotFoundError) as raised:
        _draw(sdk, model="gpt-image-1")
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    assert raised.value.body["message"].startswith("The model `gpt-image-1` has been deprecated and is no longer available.")
    with pytest.raises(openai.NotFoundError) as raised:
        _tool_call(sdk, main_model="gpt-4o-old")
    assert raised.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as raised:
        _tool_call(sdk, model="gpt-image-1")
    assert raised.value.code == "model_not_found" and "`gpt-image-1`" in raised.value.message
    with pytest.raises(openai.RateLimitError) as raised:  # more than the bucket holds: waiting will not help
        _draw(sdk, n=2)
    assert raised.value.body["message"].startswith("Request too large for gpt-image-1.5 in organization org-local")
    assert "retry-after" not in raised.value.response.headers
    assert _draw(sdk).headers["x-ratelimit-remaining-images"] == "0"  # the 404s took nothing
    assert (server.stats()["model_not_found"], server.stats()["rate_limited"]) == (3, 1)


def test_exhausted_quota_refuses_every_call(limited):
    server, sdk, _ = limited
    server.configure(quota_exhausted=True)
    for call in (lambda: _draw(sdk), lambda: _tool_call(sdk), lambda: sdk.responses.create(model="gpt-5.2", input="x")):
        with pytest.raises(openai.RateLimitError) as raised:
            call()
        assert (raised.value.code, raised.value.type) == ("insufficient_quota", "insufficient_quota")
        assert "retry-after" not in raised.value.response.headers
        assert "retry-after-ms" not in raised.value.response.headers
    assert raised.value.body["message"].startswith("You exceeded your current quota, please check your plan and billing details.")
    assert server.stats()["quota_rejected"] == 3 and server.stats()["rate_limited"] == 0
    server.configure(quota_exhausted=False)
    assert _draw(sdk).headers["x-ratelimit-remaining-images"] == "29"
