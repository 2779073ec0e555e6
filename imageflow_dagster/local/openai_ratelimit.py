"""The images-per-minute limit of the local OpenAI server, by either algorithm a real server may use, answered the
way OpenAI answers it.

- `token_bucket`: capacity = images_per_minute, refilled continuously at images_per_minute / 60 per second,
  starting full (GCRA is the same limiter in other words).
- `rolling_window`: at most images_per_minute images in any 60 s; an image leaves the window 60 s after it came.

Both start full and treat 0 as unlimited. A request that does not fit gets a 429 `rate_limit_exceeded` with
`retry-after` / `retry-after-ms` (the wait until it would fit) and every image answer carries
`x-ratelimit-*-images`. With `refused_calls_count`, a refused request is counted as if served, as OpenAI documents
("unsuccessful requests contribute to your per-minute limit"): resending at once only digs deeper.
"""

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from imageflow_dagster.local.openai_errors import ApiError

ORGANIZATION = "org-local"
RATE_LIMITS_DOCS = "Visit https://platform.openai.com/account/rate-limits to learn more."
WINDOW_S = 60.0
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


class ImageLimiter:
    """What both algorithms share: the lock, the limit, the order of checks and OpenAI's answers. Subclasses say
    how much of the minute is used and when a refused request would fit. `clock` is monotonic seconds."""

    algorithm = ""

    def __init__(self, images_per_minute: float, refused_calls_count: bool, clock: Callable[[], float]):
        self._clock = clock
        self._lock = threading.Lock()
        self.refused_calls_count = refused_calls_count
        self.images_per_minute = parse_rate(images_per_minute)  # 0 = unlimited
        self._fill(clock())  # the whole limit free

    def take(self, model: str, count: int) -> dict[str, str]:
        """Takes `count` images and returns the x-ratelimit headers, or raises the 429 OpenAI sends."""
        with self._lock:
            if self.images_per_minute <= 0:
                return {}
            now = self._clock()
            self._advance(now)
            if count > self.images_per_minute:
                raise self._too_large(model, count, now)
            if self._used() + count <= self.images_per_minute + _EPSILON:
                self._count(now, count, served=True)
                return self._headers(now)
            if self.refused_calls_count:
                self._count(now, count, served=False)
            raise self._rate_limited(model, count, now)

    # ---- the algorithm (called with the lock held)
    def _fill(self, now: float) -> None:
        raise NotImplementedError

    def _advance(self, now: float) -> None:
        """Brings the state up to `now` (refill, or images leaving the window)."""

    def _used(self) -> float:
        raise NotImplementedError

    def _count(self, now: float, count: int, served: bool) -> None:
        raise NotImplementedError

    def _wait_s(self, now: float, count: int) -> float:
        """Seconds until `count` more images fit, if nobody else calls."""
        raise NotImplementedError

    def _reset_s(self, now: float) -> float:
        """Seconds until the whole limit is free again."""
        raise NotImplementedError

    # ---- answers
    def _headers(self, now: float) -> dict[str, str]:
        remaining = max(0, math.floor(self.images_per_minute - self._used() + _EPSILON))
        return {
            "x-ratelimit-limit-images": _number(self.images_per_minute),
            "x-ratelimit-remaining-images": str(remaining),
            "x-ratelimit-reset-images": openai_duration(self._reset_s(now)),
        }

    def _rate_limited(self, model: str, count: int, now: float) -> ApiError:
        wait_s = self._wait_s(now, count)
        used = max(0, math.ceil(self._used() - _EPSILON))
        message = (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on images per minute (IPM): "
            f"Limit {_number(self.images_per_minute)}, Used {used}, Requested {count}. "
            f"Please try again in {openai_duration(wait_s)}. {RATE_LIMITS_DOCS}"
        )
        headers = {
            "retry-after": str(max(1, math.ceil(wait_s - _EPSILON))),
            "retry-after-ms": str(max(1, math.ceil(wait_s * 1000 - _EPSILON * 1000))),
            **self._headers(now),
        }
        return ApiError(429, message, "rate_limit_exceeded", "images", headers=headers)

    def _too_large(self, model: str, count: int, now: float) -> ApiError:
        """More images than the limit: waiting never helps, so OpenAI sends no retry-after (and counts nothing)."""
        message = (
            f"Request too large for {model} in organization {ORGANIZATION} on images per minute (IPM): "
            f"Limit {_number(self.images_per_minute)}, Requested {count}. "
            f"Ask for fewer images (n) in order to run successfully. {RATE_LIMITS_DOCS}"
        )
        return ApiError(429, message, "rate_limit_exceeded", "images", headers=self._headers(now))


class TokenBucket(ImageLimiter):
    """Continuous refill. A refused request that counts takes its images anyway: the level goes below zero (by at
    most a minute's worth, so the bucket is never more than two minutes from full) and refills from there."""

    algorithm = "token_bucket"

    def _fill(self, now: float) -> None:
        self._tokens, self._at = self.images_per_minute, now

    def _advance(self, now: float) -> None:
        refilled = max(0.0, now - self._at) * self._per_second()
        self._tokens, self._at = min(self.images_per_minute, self._tokens + refilled), now

    def _used(self) -> float:
        return self.images_per_minute - self._tokens

    def _count(self, now: float, count: int, served: bool) -> None:
        floor = 0.0 if served else -self.images_per_minute
        self._tokens = max(floor, self._tokens - count)

    def _wait_s(self, now: float, count: int) -> float:
        return (count - self._tokens) / self._per_second()

    def _reset_s(self, now: float) -> float:
        return (self.images_per_minute - self._tokens) / self._per_second()

    def _per_second(self) -> float:
        return self.images_per_minute / WINDOW_S


class RollingWindow(ImageLimiter):
    """A log of (arrival, images) for the last 60 s; a request fits when the log plus it stays within the limit."""

    algorithm = "rolling_window"

    def _fill(self, now: float) -> None:
        self._log: deque[tuple[float, int]] = deque()

    def _advance(self, now: float) -> None:
        while self._log and self._log[0][0] <= now - WINDOW_S:
            self._log.popleft()

    def _used(self) -> float:
        return sum(images for _, images in self._log)

    def _count(self, now: float, count: int, served: bool) -> None:
        self._log.append((now, count))

    def _wait_s(self, now: float, count: int) -> float:
        # The oldest entries leave first: wait for the one whose leaving makes room.
        over = self._used() + count - self.images_per_minute
        for at, images in self._log:
            over -= images
            if over <= _EPSILON:
                return at + WINDOW_S - now
        return WINDOW_S  # unreachable while count <= the limit: the whole log leaves within a minute

    def _reset_s(self, now: float) -> float:
        return self._log[-1][0] + WINDOW_S - now if self._log else 0.0


ALGORITHMS: dict[str, type[ImageLimiter]] = {"token_bucket": TokenBucket, "rolling_window": RollingWindow}


def parse_algorithm(value: Any) -> str:
    if value not in ALGORITHMS:
        raise ValueError(f"rate_limit_algorithm must be one of {sorted(ALGORITHMS)}, got {value!r}")
    return value


def image_limiter(
    algorithm: str = "token_bucket",
    images_per_minute: float = 0.0,
    refused_calls_count: bool = False,
    clock: Callable[[], float] = time.monotonic,
) -> ImageLimiter:
    return ALGORITHMS[parse_algorithm(algorithm)](images_per_minute, refused_calls_count, clock)
