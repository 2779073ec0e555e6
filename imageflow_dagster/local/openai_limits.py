"""Account limits of the local OpenAI server, answered the way OpenAI answers them.

- An images-per-minute token bucket shared by all models: capacity = images_per_minute, refilled continuously at
  images_per_minute / 60 per second, starting full (0 = unlimited). A request that lacks tokens gets a 429
  `rate_limit_exceeded` with `retry-after` / `retry-after-ms`; every image answer carries `x-ratelimit-*-images`.
- Shut-down models: a request naming one gets a 404 `model_not_found`.
- An exhausted quota: every call gets a 429 `insufficient_quota`, without retry-after.
"""

import math
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from imageflow_dagster.local.openai_errors import ApiError

ORGANIZATION = "org-local"
RATE_LIMITS_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)
_EPSILON = 1e-9  # float slack: a bucket refilled for exactly 60/N s at N per minute holds exactly one more token


def openai_duration(seconds: float) -> str:
    """OpenAI's duration form of the x-ratelimit-reset-* headers and 429 messages: 20ms, 1.234s, 6m0s, 1h2m3s."""
    millis = max(0, math.ceil(seconds * 1000 - _EPSILON * 1000))
    if millis < 1000:
        return f"{millis}ms" if millis else "0s"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "") + f"{secs}s"


def parse_models(value: Any) -> frozenset[str]:
    """A list of model names, or one comma-separated string of them (the CLI form)."""
    if value is None:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not all(isinstance(item, str) for item in items):
        raise ValueError(f"shut_down_models must be a list of model names, got {value!r}")
    return frozenset(item.strip() for item in items if item.strip())


def parse_bool(value: Any) -> bool:
    """A bool, or its usual spellings in a string ("true", "0", ...)."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else None
    if text in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        return text in ("1", "true", "yes", "on")
    raise ValueError(f"expected a boolean, got {value!r}")


def parse_rate(value: Any) -> float:
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"images_per_minute must be a finite number >= 0, got {value!r}")
    return rate


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


class ImageBucket:
    """The images-per-minute token bucket. `clock` is a monotonic clock in seconds (injectable for tests)."""

    def __init__(self, images_per_minute: float = 0.0, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self.images_per_minute = 0.0
        self._tokens = 0.0
        self._at = 0.0
        self.set_rate(images_per_minute)

    def set_rate(self, images_per_minute: float) -> None:
        """Sets the limit (0 = unlimited) and fills the bucket."""
        with self._lock:
            self.images_per_minute = parse_rate(images_per_minute)
            self._tokens, self._at = self.images_per_minute, self._clock()

    def refill(self) -> None:
        self.set_rate(self.images_per_minute)

    def take(self, model: str, count: int) -> dict[str, str]:
        """Takes `count` images and returns the x-ratelimit headers, or raises the 429 OpenAI sends."""
        with self._lock:
            capacity = self.images_per_minute
            if capacity <= 0:
                return {}
            now = self._clock()
            self._tokens = min(capacity, self._tokens + max(0.0, now - self._at) * capacity / 60)
            self._at = now
            if count > capacity:
                raise self._too_large(model, count)
            if self._tokens + _EPSILON >= count:
                self._tokens = max(0.0, self._tokens - count)
                return self._headers()
            raise self._rate_limited(model, count)

    # ---- answers (called with the lock held and the level brought up to date)
    def _per_second(self) -> float:
        return self.images_per_minute / 60

    def _headers(self) -> dict[str, str]:
        capacity = self.images_per_minute
        return {
            "x-ratelimit-limit-images": _number(capacity),
            "x-ratelimit-remaining-images": str(max(0, math.floor(self._tokens + _EPSILON))),
            "x-ratelimit-reset-images": openai_duration((capacity - self._tokens) / self._per_second()),
        }

    def _rate_limited(self, model: str, count: int) -> ApiError:
        wait_s = (count - self._tokens) / self._per_second()
        capacity = self.images_per_minute
        used = min(math.ceil(capacity), max(0, math.ceil(capacity - self._tokens - _EPSILON)))
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on images per minute (IPM): "
            f"Limit {_number(capacity)}, Used {used}, Requested {count}. "
            f"Please try again in {openai_duration(wait_s)}. {RATE_LIMITS_DOCS}"
        )
        headers = {
            "retry-after": str(max(1, math.ceil(wait_s - _EPSILON))),
            "retry-after-ms": str(max(1, math.ceil(wait_s * 1000 - _EPSILON * 1000))),
            **self._headers(),
        }
        return ApiError(429, message, "rate_limit_exceeded", "images", headers=headers)

    def _too_large(self, model: str, count: int) -> ApiError:
        """More images than the bucket holds: waiting never helps, so OpenAI sends no retry-after."""
        message = (
            f"Request too large for {model} in organization {ORGANIZATION} on images per minute (IPM): "
            f"Limit {_number(self.images_per_minute)}, Requested {count}. "
            f"Ask for fewer images (n) in order to run successfully. {RATE_LIMITS_DOCS}"
        )
        return ApiError(429, message, "rate_limit_exceeded", "images", headers=self._headers())


class AccountLimits:
    """The three account-level behaviours; settable at construction and through `configure`."""

    SETTINGS = ("images_per_minute", "shut_down_models", "quota_exhausted")

    def __init__(
        self,
        images_per_minute: float = 0.0,
        shut_down_models: Iterable[str] | str | None = None,
        quota_exhausted: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.bucket = ImageBucket(images_per_minute, clock)
        self.shut_down_models = parse_models(shut_down_models)
        self.quota_exhausted = parse_bool(quota_exhausted)

    def configure(self, name: str, value: Any) -> None:
        if name == "images_per_minute":
            self.bucket.set_rate(value)
        elif name == "shut_down_models":
            self.shut_down_models = parse_models(value)
        elif name == "quota_exhausted":
            self.quota_exhausted = parse_bool(value)
        else:
            raise ValueError(f"unknown limit {name!r}")

    def check_quota(self) -> None:
        if self.quota_exhausted:
            raise ApiError(429, QUOTA_MESSAGE, "insufficient_quota", "insufficient_quota")

    def check_model(self, model: Any) -> None:
        if isinstance(model, str) and model in self.shut_down_models:
            raise ApiError(
                404,
                f"The model `{model}` has been deprecated and is no longer available. "
                "Learn more: https://platform.openai.com/docs/deprecations",
                "model_not_found",
                param="model",
            )

    def take_images(self, model: str, count: int) -> dict[str, str]:
        return self.bucket.take(model, count)
