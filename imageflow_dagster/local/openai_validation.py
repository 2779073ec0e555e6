"""Request validation of the local OpenAI server, model by model, like the real API.

- gpt-image-1 family (gpt-image-1, gpt-image-1-mini, gpt-image-1.5*, chatgpt-image-latest): size auto, 1024x1024,
  1536x1024 or 1024x1536; quality low, medium, high or auto.
- gpt-image-2*: size auto or any WxH with W and H multiples of 16, aspect ratio between 1:3 and 3:1, longest edge at
  most 3840 and at most 3840*2160 pixels; quality low, medium, high or auto, plus xhigh and max on gpt-image-2.5-*.
- Other gpt-image-* names (unknown here) keep the loose checks: size WxH, any quality.
"""

import re
from typing import Any

from imageflow_dagster.local.openai_errors import ApiError

IMAGE_MODEL_PREFIXES = ("gpt-image-", "chatgpt-image-latest")
DEFAULT_TOOL_IMAGE_MODEL = "gpt-image-2.6-sunburst"  # the Responses image_generation tool's default (SDK 3.x)
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
STANDARD_SIZES = ("1024x1024", "1536x1024", "1024x1536")
QUALITIES = ("low", "medium", "high")
HIGHER_QUALITIES = ("xhigh", "max")
MAX_EDGE = 3840
MAX_PIXELS = 3840 * 2160


def image_family(model: str) -> str | None:
    """`"1"` for the gpt-image-1 family, `"2"` for gpt-image-2*, `"2.5"` for gpt-image-2.5-*, None otherwise."""
    if model == "chatgpt-image-latest" or re.fullmatch(r"gpt-image-1(-.+|\.5.*)?", model):
        return "1"
    if model.startswith("gpt-image-2.5-"):
        return "2.5"
    if model.startswith("gpt-image-2"):
        return "2"
    return None


def validate_images_request(body: dict) -> str:
    """Checks a `POST /v1/images/generations` body; returns the prompt."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "Missing required parameter: 'prompt'.", param="prompt")
    if len(prompt) > 32000:
        raise ApiError(400, "Invalid 'prompt': string too long. Expected a string with maximum length 32000.", param="prompt")
    if "response_format" in body:
        raise ApiError(400, "Unknown parameter: 'response_format'.", "unknown_parameter", param="response_format")
    model = str(body.get("model") or "")
    if not model.startswith(IMAGE_MODEL_PREFIXES):
        raise ApiError(404, f"The model '{model}' does not exist or you do not have access to it.", "model_not_found")
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 10:
        raise ApiError(400, "Invalid 'n': must be between 1 and 10.", param="n")
    fmt = body.get("output_format") or "png"
    if fmt not in PIL_FORMATS:
        raise ApiError(400, f"Invalid 'output_format': {fmt!r}.", param="output_format")
    if body.get("background") == "transparent" and fmt == "jpeg":
        raise ApiError(400, "Transparent background requires output_format png or webp.", param="background")
    if "output_compression" in body:
        compression = body["output_compression"]
        if fmt == "png":
            raise ApiError(400, "output_compression is only supported for jpeg and webp.", param="output_compression")
        if not isinstance(compression, int) or isinstance(compression, bool) or not 0 <= compression <= 100:
            raise ApiError(
                400, "Invalid 'output_compression': expected an integer between 0 and 100.", param="output_compression"
            )
    validate_size_and_quality(model, body.get("size"), body.get("quality"))
    return prompt


def validate_size_and_quality(model: str, size: Any, quality: Any) -> tuple[int, int]:
    """Checks `size` and `quality` against what `model` accepts; returns the resolved (width, height)."""
    family = image_family(model)
    if family == "1":
        if size not in (None, "auto", *STANDARD_SIZES):
            raise _invalid_value("size", size, (*STANDARD_SIZES, "auto"))
    elif family in ("2", "2.5") and size not in (None, "auto"):
        _check_flexible_size(str(size))
    if family is not None and quality is not None:
        allowed = (*QUALITIES, *(HIGHER_QUALITIES if family == "2.5" else ()), "auto")
        if quality not in allowed:
            raise _invalid_value("quality", quality, allowed)
    return image_size(size)


def image_size(size: Any) -> tuple[int, int]:
    """(width, height) of a `size` value; auto is 1024x1024."""
    if size in (None, "auto"):
        return 1024, 1024
    match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", str(size))
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise ApiError(400, f"Invalid 'size': {size!r}.", "invalid_value", param="size")
    return int(match.group(1)), int(match.group(2))


def _check_flexible_size(size: str) -> None:
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size)
    if not match or 0 in (int(match.group(1)), int(match.group(2))):
        raise _invalid_size(size, "Expected 'auto' or WIDTHxHEIGHT in pixels, for example '1536x1024'.")
    width, height = int(match.group(1)), int(match.group(2))
    if width % 16 or height % 16:
        raise _invalid_size(size, "Width and height must both be divisible by 16.")
    if max(width, height) > 3 * min(width, height):
        raise _invalid_size(size, "The aspect ratio (width:height) must be between 1:3 and 3:1.")
    if max(width, height) > MAX_EDGE:
        raise _invalid_size(size, f"The longest edge must be at most {MAX_EDGE} pixels.")
    if width * height > MAX_PIXELS:
        raise _invalid_size(size, f"The image must have at most {MAX_PIXELS} pixels (3840x2160).")


def _invalid_size(size: str, reason: str) -> ApiError:
    return ApiError(400, f"Invalid size '{size}'. {reason}", "invalid_value", param="size")


def _invalid_value(param: str, value: Any, allowed: tuple[str, ...]) -> ApiError:
    listed = ", ".join(f"'{item}'" for item in allowed[:-1]) + f", and '{allowed[-1]}'"
    return ApiError(400, f"Invalid value: '{value}'. Supported values are: {listed}.", "invalid_value", param=param)
