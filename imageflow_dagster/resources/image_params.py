"""Image parameters that the model actually used accepts.

The seed's step editor stores sizes and qualities of whatever model was current (DALL·E's `1792x1024` and `hd`,
gpt-image-1's three sizes). A model replaced by its successor, or a workflow written for another family, gets
its config mapped to the nearest thing the model takes; a config no mapping can save fails before any call.
"""

import re
from typing import Any

FLEX_STEP = 16
FLEX_MAX_EDGE = 3840
FLEX_MAX_PIXELS = 3840 * 2160
FLEX_MAX_ASPECT = 3.0
LEGACY_QUALITY = {"standard": "medium", "hd": "high"}
BASE_QUALITIES = ("low", "medium", "high", "auto")
TOP_QUALITIES = ("xhigh", "max")  # gpt-image-2.5 only
_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")


class ImageConfigError(ValueError):
    """The step's image settings cannot be expressed for the model that will render it."""


def is_flexible(model: str) -> bool:
    """gpt-image-2 and later take any WxH within limits; the gpt-image-1 family takes three sizes."""
    return model.startswith("gpt-image-") and not model.startswith("gpt-image-1")


def fit_image_params(model: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` (Images API arguments besides model and prompt) made acceptable to `model`."""
    fitted = dict(params)
    if "size" in fitted:
        fitted["size"] = _fit_size(model, str(fitted["size"]))
    if "quality" in fitted:
        fitted["quality"] = _fit_quality(model, str(fitted["quality"]).lower())
    if fitted.get("size") == "auto":
        fitted.pop("size")
    if fitted.get("quality") == "auto":
        fitted.pop("quality")
    return fitted


def _fit_size(model: str, size: str) -> str:
    if size == "auto":
        return size
    match = _SIZE.match(size)
    if not match:
        raise ImageConfigError(f"image size {size!r} is not WIDTHxHEIGHT")
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 or height <= 0:
        raise ImageConfigError(f"image size {size!r} has a zero side")
    return _flex_size(model, width, height) if is_flexible(model) else _fixed_size(width, height)


def _fixed_size(width: int, height: int) -> str:
    """The gpt-image-1 size of the same orientation (DALL·E's 1792x1024 becomes 1536x1024)."""
    if width == height:
        return "1024x1024"
    return "1536x1024" if width > height else "1024x1536"


def _flex_size(model: str, width: int, height: int) -> str:
    aspect = max(width, height) / min(width, height)
    if aspect > FLEX_MAX_ASPECT:
        raise ImageConfigError(
            f"image size {width}x{height} has an aspect ratio of {aspect:.2f}:1; {model} accepts 1:3 to 3:1"
        )
    w, h = _round16(width), _round16(height)
    if max(w, h) > FLEX_MAX_EDGE or w * h > FLEX_MAX_PIXELS:
        raise ImageConfigError(f"image size {width}x{height} is larger than {model} renders (at most 3840x2160)")
    return f"{w}x{h}"


def _round16(side: int) -> int:
    return max(FLEX_STEP, int(side / FLEX_STEP + 0.5) * FLEX_STEP)  # half up: 1000 -> 1008


def _fit_quality(model: str, quality: str) -> str:
    quality = LEGACY_QUALITY.get(quality, quality)
    if quality in BASE_QUALITIES:
        return quality
    if quality in TOP_QUALITIES:
        return quality if model.startswith("gpt-image-2.5") else "high"
    raise ImageConfigError(f"image quality {quality!r} is not one of low, medium, high or auto")
