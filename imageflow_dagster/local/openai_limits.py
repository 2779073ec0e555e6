"""Account limits of the local OpenAI server, answered the way OpenAI answers them.

- Images per minute, one limit shared by all models or one per model, by a token bucket or a rolling minute,
  refused calls counted or not (see openai_ratelimit): a request that does not fit gets a 429
  `rate_limit_exceeded` with `retry-after`.
- Shut-down models: a request naming one gets a 404 `model_not_found`.
- An exhausted quota: every call gets a 429 `insufficient_quota`, without retry-after.
"""

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from imageflow_dagster.local.openai_errors import ApiError
from imageflow_dagster.local.openai_ratelimit import ImageLimiter, image_limiter, parse_algorithm, parse_rate

QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more information on this "
    "error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
)


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


class AccountLimits:
    """The account-level behaviours; settable at construction and through `configure`."""

    RATE_SETTINGS = {  # how images per minute are limited -> parser
        "images_per_minute": parse_rate,
        "rate_limit_algorithm": parse_algorithm,
        "refused_calls_count": parse_bool,
        "rate_limit_per_model": parse_bool,  # each model its own limit, as OpenAI's are; else one for all models
    }
    SETTINGS = (*RATE_SETTINGS, "shut_down_models", "quota_exhausted")

    def __init__(
        self,
        images_per_minute: float = 0.0,
        shut_down_models: Iterable[str] | str | None = None,
        quota_exhausted: bool = False,
        clock: Callable[[], float] = time.monotonic,
        rate_limit_algorithm: str = "token_bucket",
        refused_calls_count: bool = False,
        rate_limit_per_model: bool = False,
    ):
        self._clock = clock
        self._lock = threading.Lock()
        given = (images_per_minute, rate_limit_algorithm, refused_calls_count, rate_limit_per_model)
        self.rate_limit = {name: parse(value) for (name, parse), value in zip(self.RATE_SETTINGS.items(), given)}
        self._limiters: dict[str, ImageLimiter] = {}  # model ("" when shared) -> its limiter, made on first use
        self.shut_down_models = parse_models(shut_down_models)
        self.quota_exhausted = parse_bool(quota_exhausted)

    def configure(self, name: str, value: Any) -> None:
        if name in self.RATE_SETTINGS:
            self.rate_limit[name] = self.RATE_SETTINGS[name](value)
            self.refill()  # a changed limit starts with the whole of it free
        elif name == "shut_down_models":
            self.shut_down_models = parse_models(value)
        elif name == "quota_exhausted":
            self.quota_exhausted = parse_bool(value)
        else:
            raise ValueError(f"unknown limit {name!r}")

    def refill(self) -> None:
        with self._lock:
            self._limiters.clear()

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
        return self._limiter(model).take(model, count)

    def _limiter(self, model: str) -> ImageLimiter:
        key = model if self.rate_limit["rate_limit_per_model"] else ""
        with self._lock:
            if key not in self._limiters:
                settings = self.rate_limit
                self._limiters[key] = image_limiter(
                    settings["rate_limit_algorithm"], settings["images_per_minute"], settings["refused_calls_count"],
                    self._clock,
                )
            return self._limiters[key]
