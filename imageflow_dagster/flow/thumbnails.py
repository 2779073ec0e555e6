"""Small JPEG previews of stored images, for the Dagster UI (which would otherwise load full-size originals).

A thumbnail lives inside its job's prefix, so whatever removes a job's objects by prefix removes it too,
and in its own folder, so it is never mistaken for one of the job's images.
"""

import io
import posixpath

from PIL import Image

THUMBNAIL_DIR = "thumbnails"
CONTENT_TYPE = "image/jpeg"
MAX_PX = 256
QUALITY = 70  # previews only: small beats faithful
_WHITE = (255, 255, 255)


def thumbnail_key(image_key: str) -> str:
    """`{prefix}/{name}.{ext}` -> `{prefix}/thumbnails/{name}.jpg`."""
    folder, name = posixpath.split(image_key)
    stem = posixpath.splitext(name)[0]
    return posixpath.join(folder, THUMBNAIL_DIR, f"{stem}.jpg")


def make_thumbnail(image_bytes: bytes, max_px: int = MAX_PX) -> bytes:
    """A JPEG that fits within max_px x max_px, aspect ratio kept; never larger than the original's size."""
    with Image.open(io.BytesIO(image_bytes)) as image:
        image.draft("RGB", (max_px, max_px))  # JPEG originals decode at a reduced scale: less memory and time
        flat = _flatten(image)
    flat.thumbnail((max_px, max_px), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=QUALITY, optimize=True)
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    """RGB for JPEG. Transparent areas become white rather than whatever colour hides under alpha 0."""
    if image.mode == "RGB":
        return image.copy()
    rgba = image.convert("RGBA")  # P with a transparency index, LA, L, CMYK ... all land here
    flat = Image.new("RGB", rgba.size, _WHITE)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat
