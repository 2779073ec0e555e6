"""Identifiers: validation of ids that end up in S3 keys, and ULID-shaped ids (random or stable)."""

import hashlib
import re
import time
import unicodedata
from datetime import datetime, timezone

from ulid import ULID

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_ID_LENGTH = 128
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class InvalidIdError(ValueError):
    """An id that cannot safely become part of an S3 key or a Dagster partition key."""


def validate_id(kind: str, value: object) -> str:
    """Return `value` if it is safe inside `{tenant_id}/jobs/{job_id}/...`; raise InvalidIdError otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidIdError(f"{kind} is missing or not a string")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(f"{kind} is longer than {MAX_ID_LENGTH} characters")
    if "/" in value or "\\" in value:
        raise InvalidIdError(f"{kind} {value!r} contains a path separator")
    if ".." in value:
        raise InvalidIdError(f"{kind} {value!r} contains '..'")
    if _CONTROL_CHARS.search(value) or any(_invisible(char) for char in value):
        raise InvalidIdError(f"{kind} contains control or invisible characters")
    # Dagster partition keys may not contain commas (UI backfills split on them) and spaces make ugly URLs.
    if "," in value or value != value.strip():
        raise InvalidIdError(f"{kind} {value!r} contains a comma or surrounding whitespace")
    return value


def _invisible(char: str) -> bool:
    """Format, private-use and unassigned characters (e.g. a right-to-left override) and line separators."""
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp")


def new_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def stable_id(prefix: str, *parts: object) -> str:
    """A ULID-shaped id derived from `parts`, so re-running the same work finds the same row."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    number = int.from_bytes(digest[:17], "big") >> 6  # 130 bits -> 26 Crockford characters
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[number & 31])
        number >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def short_hash(*parts: object, length: int = 16) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:length]


def utc_now_iso() -> str:
    """ISO-8601 UTC with milliseconds and `Z`, the format the seed's API writes."""
    return iso_from_epoch(time.time())


def iso_from_epoch(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
