"""What an image costs and may be: the local OpenAI server's images-per-minute limiter on a clock the test
moves (local/openai_ratelimit.py), token prices (pricing.py) and image parameters fitted to a model."""

import pytest

from imageflow_dagster import pricing
from imageflow_dagster.resources.image_params import ImageConfigError, fit_image_params
from imageflow_dagster.local.openai_errors import ApiError
from imageflow_dagster.local.openai_ratelimit import (
    image_limiter,
    openai_duration,
    parse_algorithm,
    parse_rate,
)


class Clock:
    """Monotonic seconds that move only when the test says."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _refusal(limiter, count: int) -> ApiError:
    with pytest.raises(ApiError) as caught:
        limiter.take("gpt-image-1", count)
    return caught.value


def test_a_token_bucket_starts_full_and_refills_continuously():
    clock = Clock()
    bucket = image_limiter("token_bucket", 6, clock=clock)  # one image every 10 s
    assert bucket.take("gpt-image-1", 5) == {
        "x-ratelimit-limit-images": "6",
        "x-ratelimit-remaining-images": "1",
        "x-ratelimit-reset-images": "50s",
    }
    refused = _refusal(bucket, 2)
    assert (
        refused.status == 429
        and refused.headers["retry-after"] == "10"
        and refused.headers["retry-after-ms"] == "10000"
    )
    assert refused.body["error"]["code"] == "rate_limit_exceeded"
    assert refused.body["error"]["message"].startswith(
        "Rate limit reached for gpt-image-1 in organization org-local on images per minute (IPM): "
        "Limit 6, Used 5, Requested 2. Please try again in 10s."
    )
    clock.now = 10.0
    assert bucket.take("gpt-image-1", 2)["x-ratelimit-remaining-images"] == "0"


def test_more_images_than_the_limit_are_refused_without_a_retry_after():
    refused = _refusal(image_limiter("token_bucket", 6, clock=Clock()), 7)
    assert "retry-after" not in refused.headers
    assert "Request too large for gpt-image-1" in refused.body["error"]["message"]


def test_a_rolling_window_frees_an_image_sixty_seconds_after_it_came():
    clock = Clock()
    window = image_limiter("rolling_window", 2, clock=clock)
    window.take("gpt-image-1", 1)
    clock.now = 30.0
    window.take("gpt-image-1", 1)
    clock.now = 59.0
    assert _refusal(window, 1).headers["retry-after"] == "1"
    clock.now = 60.0
    assert window.take("gpt-image-1", 1)["x-ratelimit-remaining-images"] == "0"


@pytest.mark.parametrize(("refused_calls_count", "waits"), [(False, (59, 59)), (True, (59, 60))])
def test_when_refused_calls_count_resending_at_once_only_digs_deeper(refused_calls_count, waits):
    clock = Clock()
    window = image_limiter("rolling_window", 2, refused_calls_count=refused_calls_count, clock=clock)
    window.take("gpt-image-1", 2)
    clock.now = 1.0
    assert tuple(int(_refusal(window, 1).headers["retry-after"]) for _ in range(2)) == waits


def test_a_limit_of_zero_is_unlimited_and_bad_settings_are_refused():
    assert image_limiter("token_bucket", 0, clock=Clock()).take("gpt-image-1", 10_000) == {}
    for bad in (-1, "many", float("inf"), None):
        with pytest.raises(ValueError, match="images_per_minute must be a finite number >= 0"):
            parse_rate(bad)
    with pytest.raises(ValueError, match="rate_limit_algorithm must be one of"):
        parse_algorithm("leaky_bucket")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.0004, "1ms"), (0.02, "20ms"), (1.234, "1.234s"), (60, "1m0s"), (3723, "1h2m3s")],
)
def test_durations_are_written_as_openai_writes_them(seconds, text):
    assert openai_duration(seconds) == text


def test_prices_come_from_the_table_dated_snapshots_price_like_their_base_model():
    assert pricing.text_cost("gpt-5-mini", 1_000_000, 1_000_000) == 2.25
    assert pricing.text_cost("gpt-5-mini-2026-01-01", 1_000_000, 1_000_000) == 2.25
    assert not pricing.is_estimated("text", "gpt-5-mini-2026-01-01")
    assert pricing.image_cost("gpt-image-1", 100, 0, 4160) == 0.1669  # (100 * 5 + 4160 * 40) / 1M


def test_an_unknown_model_is_priced_by_the_default_row_and_flagged_as_an_estimate():
    assert pricing.is_estimated("text", "mystery-model") and pricing.is_estimated("image", "mystery-image")
    assert pricing.text_cost("mystery-model", 1000, 1000) == 0.02


@pytest.mark.parametrize(
    ("model", "given", "fitted"),
    [
        ("gpt-image-1", {"size": "1792x1024", "quality": "hd"}, {"size": "1536x1024", "quality": "high"}),
        (
            "gpt-image-1",
            {"size": "512 x 512", "quality": "standard"},
            {"size": "1024x1024", "quality": "medium"},
        ),
        ("gpt-image-2", {"size": "1000×700", "quality": "xhigh"}, {"size": "1008x704", "quality": "high"}),
        ("gpt-image-2.5-flare", {"size": "auto", "quality": "max"}, {"quality": "max"}),
        ("gpt-image-1", {"quality": "auto", "output_format": "webp"}, {"output_format": "webp"}),
    ],
)
def test_image_settings_are_mapped_to_what_the_model_takes(model, given, fitted):
    assert fit_image_params(model, given) == fitted


@pytest.mark.parametrize(
    ("model", "given", "message"),
    [
        ("gpt-image-2", {"size": "3000x900"}, "aspect ratio of 3.33:1; gpt-image-2 accepts 1:3 to 3:1"),
        ("gpt-image-2", {"size": "4000x3000"}, "larger than gpt-image-2 renders"),
        ("gpt-image-1", {"size": "big"}, "image size 'big' is not WIDTHxHEIGHT"),
        ("gpt-image-1", {"size": "0x10"}, "has a zero side"),
        (
            "gpt-image-1",
            {"quality": "ultra"},
            "image quality 'ultra' is not one of low, medium, high or auto",
        ),
    ],
)
def test_image_settings_no_mapping_can_save_fail_before_any_call(model, given, message):
    with pytest.raises(ImageConfigError, match=message):
        fit_image_params(model, given)
