"""Image bytes and image token counts of the local OpenAI server."""

import base64
import io
import random
from functools import lru_cache

from PIL import Image, ImageDraw

from imageflow_dagster.local.openai_validation import PIL_FORMATS

OUTPUT_TOKENS = {  # per image, gpt-image-1 family (quality -> square, portrait, landscape)
    "low": (272, 408, 400),
    "medium": (1056, 1584, 1568),
    "high": (4160, 6240, 6208),
}
_LARGE_NOISE_PIXELS = 1536 * 1536  # noise images above this are cached in a small cache of their own (memory)


def image_tokens(quality: str, width: int, height: int) -> int:
    """Output tokens of one image: the table for the three standard sizes, else the square value scaled by area."""
    square, portrait, landscape = OUTPUT_TOKENS.get(quality, OUTPUT_TOKENS["medium"])
    table = {(1024, 1024): square, (1024, 1536): portrait, (1536, 1024): landscape}
    return table.get((width, height), round(square * width * height / (1024 * 1024)))


def b64_payload(payload: str, fault: str | None, fmt: str, width: int, height: int, background: str) -> str:
    """The base64 image of an answer; the payload faults give bytes that are not the promised image."""
    if fault == "invalid_base64":
        return "@@not-base64@@"
    if fault == "not_image":
        return base64.b64encode(b"hello, this is not an image").decode()
    if fault == "wrong_format":
        fmt = "jpeg" if fmt == "png" else "png"
    if payload == "noise" and width * height > _LARGE_NOISE_PIXELS:
        return _large_noise_image(fmt, width, height, background)
    return _encoded_image(fmt, width, height, background, payload)


@lru_cache(maxsize=64)
def _encoded_image(fmt: str, width: int, height: int, background: str, payload: str) -> str:
    return _render(fmt, width, height, background, payload)


@lru_cache(maxsize=4)
def _large_noise_image(fmt: str, width: int, height: int, background: str) -> str:
    return _render(fmt, width, height, background, "noise")


def _render(fmt: str, width: int, height: int, background: str, payload: str) -> str:
    mode = "RGBA" if background == "transparent" and fmt in ("png", "webp") else "RGB"
    if payload == "noise":
        image = Image.frombytes("RGB", (width, height), random.randbytes(width * height * 3)).convert(mode)
    else:
        image = Image.new(mode, (width, height), (40, 90, 160, 0) if mode == "RGBA" else (40, 90, 160))
        draw = ImageDraw.Draw(image)
        draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(240, 180, 60))
        draw.rectangle((0, height - height // 8, width, height), fill=(20, 20, 30))
        draw.text((16, height - height // 10), "imageflow local", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, PIL_FORMATS[fmt])
    return base64.b64encode(out.getvalue()).decode()
