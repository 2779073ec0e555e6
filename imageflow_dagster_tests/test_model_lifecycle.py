"""The model lifecycle table and the image parameters each model accepts: dates, successors, overrides."""

import json
from datetime import date

import pytest

from imageflow_dagster import lifecycle, pricing
from imageflow_dagster.resources.image_params import ImageConfigError, fit_image_params
from imageflow_dagster.settings import Settings

SHUTDOWN_DEC_1 = ("gpt-image-1.5", "gpt-image-1.5-2025-12-16", "gpt-image-1-mini", "chatgpt-image-latest")
SHUTDOWN_DEC_11 = ("gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-5-pro", "o3", "o3-pro")


@pytest.mark.parametrize("model", SHUTDOWN_DEC_1)
def test_image_models_are_replaced_from_december_1(model):
    assert lifecycle.resolve(model, date(2026, 11, 30)) is None
    replaced = lifecycle.resolve(model, date(2026, 12, 1))
    assert replaced.requested == model
    assert replaced.used in ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare")
    assert "shut down on 2026-12-01" in replaced.reason


@pytest.mark.parametrize("model", SHUTDOWN_DEC_11)
def test_text_models_are_replaced_from_december_11(model):
    assert lifecycle.resolve(model, date(2026, 12, 10)) is None
    assert lifecycle.resolve(model, date(2026, 12, 11)).used.startswith("gpt-6")


def test_models_in_service_are_kept():
    for model in ("gpt-5.2", "gpt-image-2.6-sunburst", "gpt-6.1-sol"):
        assert lifecycle.resolve(model, date(2030, 1, 1)) is None


def test_every_model_a_replacement_leads_to_is_priced():
    routed = lifecycle.routable_models()
    assert {"gpt-image-2.6-sunburst", "gpt-6.1-sol"} <= routed
    image = [m for m in routed if m.startswith("gpt-image")]
    text = routed - set(image)
    assert [m for m in image if pricing.is_estimated("image", m)] == []
    assert [m for m in text if pricing.is_estimated("text", m)] == []


def test_a_404_finds_the_successor_before_the_shutdown_date():
    replaced = lifecycle.after_not_found("gpt-image-1.5", date(2026, 1, 1))
    assert replaced.used == "gpt-image-2.6-sunburst" and "404" in replaced.reason


def test_a_model_without_successor_names_the_model_and_the_setting():
    with pytest.raises(lifecycle.ModelRetired) as caught:
        lifecycle.after_not_found("gpt-image-9-unknown", date(2026, 1, 1))
    assert "gpt-image-9-unknown" in str(caught.value) and "IMAGEFLOW_MODEL_REPLACEMENTS" in str(caught.value)


def test_operators_override_inline_and_by_file(monkeypatch, tmp_path):
    # IMAGEFLOW_MODEL_REPLACEMENTS, read by settings.py, as the OpenAI resource passes it.
    monkeypatch.setenv(lifecycle.OVERRIDE_ENV, json.dumps({"gpt-image-1.5": "gpt-image-2.6-flare"}))
    inline = Settings.from_env().model_replacements
    # A bare name changes the successor and keeps the shipped date.
    assert lifecycle.resolve("gpt-image-1.5", date(2026, 11, 30), inline) is None
    assert lifecycle.resolve("gpt-image-1.5", date(2026, 12, 1), inline).used == "gpt-image-2.6-flare"
    table = tmp_path / "lifecycle.json"
    table.write_text(json.dumps({"models": {"gpt-5.2": {"shutdown": "2026-01-01", "replacement": "gpt-6.1-sol"}}}))
    monkeypatch.setenv(lifecycle.OVERRIDE_ENV, str(table))
    assert lifecycle.resolve("gpt-5.2", date(2026, 1, 2), Settings.from_env().model_replacements).used == "gpt-6.1-sol"


def test_a_retired_successor_leads_on_to_its_own_successor():
    chain = {"model-a": {"shutdown": "2026-01-01", "replacement": "model-b"},
             "model-b": {"shutdown": "2026-02-01", "replacement": "model-c"}}
    assert lifecycle.resolve("model-a", date(2026, 1, 15), json.dumps(chain)).used == "model-b"
    assert lifecycle.resolve("model-a", date(2026, 3, 1), json.dumps(chain)).used == "model-c"


@pytest.mark.parametrize(
    ("model", "given", "expected"),
    [
        ("gpt-image-2.6-sunburst", {"size": "1792x1024", "quality": "hd"}, {"size": "1792x1024", "quality": "high"}),
        ("gpt-image-2.6-sunburst", {"size": "1000x1000"}, {"size": "1008x1008"}),
        ("gpt-image-2.6-sunburst", {"size": "auto", "quality": "auto"}, {}),
        ("gpt-image-2.6-flare", {"quality": "xhigh"}, {"quality": "high"}),
        ("gpt-image-2.5-sunburst", {"quality": "max", "size": "3840x2160"}, {"quality": "max", "size": "3840x2160"}),
        ("gpt-image-1.5", {"size": "1792x1024", "quality": "standard"}, {"size": "1536x1024", "quality": "medium"}),
        ("gpt-image-1.5", {"size": "2048x1152", "output_format": "webp"}, {"size": "1536x1024", "output_format": "webp"}),
    ],
)
def test_seed_configs_are_mapped_to_what_the_model_accepts(model, given, expected):
    assert fit_image_params(model, given) == expected


@pytest.mark.parametrize(
    ("size", "quality", "message"),
    [
        ("4000x400", None, "aspect ratio of 10.00:1"),
        ("4096x2304", None, "larger than"),
        ("big", None, "not WIDTHxHEIGHT"),
        (None, "ultra", "image quality 'ultra'"),
    ],
)
def test_impossible_configs_fail_with_a_clear_error(size, quality, message):
    params = {k: v for k, v in (("size", size), ("quality", quality)) if v}
    with pytest.raises(ImageConfigError, match=message):
        fit_image_params("gpt-image-2.6-sunburst", params)
