"""Base64 image payloads: strict decoding, format by magic bytes, conversion to the requested format."""

import base64
import binascii
import io
from dataclasses import dataclass

from PIL import Image

CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}


class InvalidImageData(ValueError):
    pass


@dataclass(frozen=True)
class ImageBytes:
    data: bytes
    format: str  # png | jpeg | webp
    width: int
    height: int
    converted_from: str | None = None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def decode_base64(b64: str | None) -> bytes:
    if not b64:
        raise InvalidImageData("the API returned no image data")
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageData("the API returned invalid base64 image data") from exc


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def read_image(data: bytes, requested_format: str, compression: int | None = None) -> ImageBytes:
    """Validate `data` as PNG/JPEG/WebP; bytes of another format than requested are converted to it.

    Converting keeps the key, URL and extension planned from the request true (dependent steps already saw
    that URL) and keeps the image we paid for.
    """
    actual = sniff_format(data)
    if actual is None:
        raise InvalidImageData("the API returned bytes that are not a PNG, JPEG or WebP image")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # catches truncated or corrupt files that have a valid header
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if actual == requested_format:
                return ImageBytes(data, actual, width, height)
            return ImageBytes(_convert(image, requested_format, compression), requested_format, width, height, actual)
    except InvalidImageData:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise InvalidImageData(f"the API returned a corrupt {actual.upper()} image: {exc}") from exc


def _convert(image: Image.Image, target: str, compression: int | None) -> bytes:
    out = io.BytesIO()
    if target == "jpeg":
        image = image.convert("RGB")
        image.save(out, "JPEG", quality=compression or 90)
    elif target == "webp":
        image.save(out, "WEBP", quality=compression or 90)
    else:
        image.save(out, "PNG")
    return out.getvalue()
