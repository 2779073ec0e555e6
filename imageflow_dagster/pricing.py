"""Token prices live in pricing.json, the one place to update when OpenAI changes them."""

import json
from functools import lru_cache
from importlib import resources

PER_MILLION = 1_000_000


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(resources.files("imageflow_dagster").joinpath("pricing.json").read_text())


def _rates(kind: str, model: str) -> tuple[dict, bool]:
    table = _table()[kind]
    if model in table:
        return table[model], False
    # Dated snapshots ("gpt-5.2-2025-12-11") price like their base model.
    for name in sorted(table, key=len, reverse=True):
        if name != "default" and model.startswith(name + "-"):
            return table[name], False
    return table["default"], True


def text_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    rates, _ = _rates("text", model)
    return round((input_tokens * rates["input"] + output_tokens * rates["output"]) / PER_MILLION, 8)


def image_cost(
    model: str, text_input_tokens: int, image_input_tokens: int, image_output_tokens: int, text_output_tokens: int = 0
) -> float:
    rates, _ = _rates("image", model)
    total = (
        text_input_tokens * rates["text_input"]
        + image_input_tokens * rates["image_input"]
        + image_output_tokens * rates["image_output"]
        + text_output_tokens * rates["text_output"]
    )
    return round(total / PER_MILLION, 8)


def is_estimated(kind: str, model: str) -> bool:
    return _rates(kind, model)[1]
