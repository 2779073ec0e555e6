"""The one place that decides whether an OpenAI call is tried again.

The SDK's own retries are off (`max_retries=0` on the client): left on, its two retries of every 429 would
multiply with our waiting for budget. Here a call first takes its units from the shared rate budget and, when it
had to sleep for them, checks right before it goes out that no 429 paused the account meanwhile; then:
- 429 `rate_limit_exceeded` pauses every run and drains the shared budget (rate_budget.slow_down), and is tried
  again, for as long as the caller's patience lasts;
- 429 `insufficient_quota` fails at once: waiting does not buy quota;
- connection errors, timeouts, 408, 409 and 5xx are retried `max_retries` times with the SDK's backoff.
A successful answer's `x-ratelimit-remaining-*` corrects the shared budget (rate_budget.observe), so calls are
`with_raw_response` calls: the policy reads the headers and hands back the parsed answer.
"""

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import openai

from imageflow_dagster.observability import signals
from imageflow_dagster.resources.rate_budget import Budget, BudgetExhausted, OpenAIRateBudget

Result = TypeVar("Result")
TRANSIENT_STATUSES = (408, 409)
MAX_HONOURED_RETRY_AFTER_S = 60.0
# Below this a wait is not worth a live_step write.
VISIBLE_WAIT_S = 1.0
# A paced call goes this long after its slot: a call that reaches OpenAI faster than the one that opened the
# minute (clocks, connections and networks jitter) would otherwise find the bucket a few ms short and get a 429.
SLOT_MARGIN_S = 0.2


class QuotaExhausted(openai.OpenAIError):
    """429 insufficient_quota: the account's credit or monthly budget is spent."""


class RateLimitPatienceExceeded(openai.OpenAIError):
    """The call waited for the rate limit as long as it may."""


@dataclass
class CallStats:
    """What one logical call cost in waiting: budget waits, 429s and attempts."""

    attempts: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0

    def add(self, other: "CallStats") -> None:
        self.attempts += other.attempts
        self.rate_limited += other.rate_limited
        self.waited_s = round(self.waited_s + other.waited_s, 3)


@dataclass(frozen=True)
class CallPolicy:
    budget: OpenAIRateBudget
    max_retries: int
    patience_s: float

    def run(
        self,
        call: Callable[[], Result],
        budget: Budget,
        units: float,
        stats: CallStats,
        on_wait: Callable[[float], None] | None = None,
    ) -> Result:
        waited_s, rate_limited = stats.waited_s, stats.rate_limited  # `stats` may carry an earlier model's call
        try:
            return self._run(call, budget, units, stats, on_wait)
        finally:  # measured whether it succeeded or not: waits that ran out of patience matter most
            signals.openai_call(budget.key, stats.waited_s - waited_s, stats.rate_limited - rate_limited)

    def _run(self, call, budget: Budget, units: float, stats: CallStats, on_wait) -> Result:
        deadline = time.monotonic() + self.patience_s
        transient_failures = 0
        in_slot_retry = False
        while True:
            if not in_slot_retry:
                self._wait_for_budget(budget, units, deadline, stats, on_wait)
            stats.attempts += 1
            sent_at = time.time()
            try:
                answer = call()
            except openai.RateLimitError as exc:
                if getattr(exc, "code", None) == "insufficient_quota":
                    raise QuotaExhausted(f"OpenAI quota exhausted: {_message(exc)}") from exc
                stats.rate_limited += 1
                retry_after = retry_after_s(exc) or 1.0
                self.budget.slow_down(budget, retry_after, limit_from_headers(exc, budget))
                # A call that had its slot under a configured limit arrived a moment early (clocks and networks
                # jitter): it keeps its slot and goes again when told, once, instead of queueing at the back.
                in_slot_retry = not in_slot_retry and _early_for_its_slot(budget, units, retry_after)
                if in_slot_retry:
                    self._sleep_in_slot(retry_after, deadline, stats)
            except (openai.APIConnectionError, openai.APIStatusError) as exc:
                if not _is_transient(exc) or transient_failures >= self.max_retries:
                    raise
                time.sleep(_backoff(exc, transient_failures))
                transient_failures += 1
            else:
                return self._parsed(answer, budget, sent_at)

    def _parsed(self, answer, budget: Budget, sent_at: float):
        """The SDK's parsed answer; on the way, OpenAI's count of what is left corrects the shared budget."""
        headers = getattr(answer, "headers", None)
        if headers is None:
            return answer
        remaining = _header_number(headers, "remaining", budget)
        if remaining is not None:
            self.budget.observe(budget, sent_at, remaining, _header_number(headers, "limit", budget))
        return answer.parse()

    def _sleep_in_slot(self, seconds: float, deadline: float, stats: CallStats) -> None:
        if time.monotonic() + seconds > deadline:
            raise self._out_of_patience(stats, f"OpenAI asks to wait {seconds:.0f} s")
        time.sleep(seconds)
        stats.waited_s = round(stats.waited_s + seconds, 3)

    def _wait_for_budget(self, budget, units, deadline, stats: CallStats, on_wait) -> None:
        """Takes a slot and sleeps until it. A pause in force on waking means a 429 came while this call slept:
        its slot was counted on a bucket OpenAI says is empty, so it takes a new one rather than add a 429."""
        while True:
            wait = self._reserve(budget, units, deadline, stats)
            if wait <= 0:
                return  # reserved just now: the reservation saw any pause in force
            wait += SLOT_MARGIN_S
            if on_wait and wait >= VISIBLE_WAIT_S:
                on_wait(wait)
            time.sleep(wait)
            stats.waited_s = round(stats.waited_s + wait, 3)
            if self.budget.pause_left(budget) <= 0:
                return

    def _reserve(self, budget, units, deadline, stats: CallStats) -> float:
        left = deadline - time.monotonic()
        try:
            return self.budget.reserve(budget, units, max(0.0, left))
        except BudgetExhausted as exc:
            raise self._out_of_patience(stats, f"the next free slot is {exc.wait_s:.0f} s away") from exc

    def _out_of_patience(self, stats: CallStats, detail: str) -> RateLimitPatienceExceeded:
        return RateLimitPatienceExceeded(
            f"OpenAI rate limit: still limited after waiting {stats.waited_s:.0f} s and {stats.rate_limited} "
            f"refusal(s); {detail} (IMAGEFLOW_RATE_LIMIT_WAIT_S={self.patience_s:.0f})"
        )


def _early_for_its_slot(budget: Budget, units: float, retry_after: float) -> bool:
    """Under a configured limit, a 429 that clears within one slot means the call came a moment early."""
    return bool(budget.per_minute) and retry_after <= 60 * units / budget.per_minute


def retry_after_s(exc: openai.APIStatusError) -> float | None:
    """`retry-after-ms` (preferred) or `retry-after` in seconds, as OpenAI sends them."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        try:
            return float(raw) * scale if raw is not None else None
        except ValueError:
            continue
    return None


def limit_from_headers(exc: openai.APIStatusError, budget: Budget) -> float | None:
    """The per-minute limit OpenAI reports (`x-ratelimit-limit-images`, `-requests` or `-tokens`)."""
    limit = _header_number(exc.response.headers, "limit", budget)
    return limit if limit else None


def _header_number(headers, field: str, budget: Budget) -> float | None:
    """`x-ratelimit-{field}-images` (or `-requests`) for an images budget, `-tokens` for a tokens one."""
    names = ("images", "requests") if budget.key.startswith("images") else ("tokens",)
    for name in names:
        try:
            value = float(headers.get(f"x-ratelimit-{field}-{name}"))
        except (TypeError, ValueError):
            continue
        if value >= 0:
            return value
    return None


def _is_transient(exc: openai.OpenAIError) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.InternalServerError)):
        return True
    status = getattr(exc, "status_code", 0)
    return status in TRANSIENT_STATUSES or status >= 500


def _backoff(exc: openai.OpenAIError, failures: int) -> float:
    """The SDK's delay: the server's retry-after up to 60 s, else 0.5 s doubling to 8 s, minus up to 25%."""
    if isinstance(exc, openai.APIStatusError):
        told = retry_after_s(exc)
        if told is not None and 0 <= told <= MAX_HONOURED_RETRY_AFTER_S:
            return told
    return min(0.5 * 2**failures, 8.0) * (1 - 0.25 * random.random())


def _message(exc: openai.APIStatusError) -> str:
    """OpenAI's own words, without the SDK's "Error code: 429 - " prefix."""
    body = exc.body if isinstance(exc.body, dict) else {}
    return body.get("message") or getattr(exc, "message", None) or str(exc)
