"""The mutable state of one local OpenAI server (settings, fault rules, request log, counters, account limits) and
the control operations on it that the Python API and the `/_local/` HTTP routes share."""

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from imageflow_dagster.local.openai_limits import AccountLimits, parse_bool, parse_models

ERROR_STATS = {  # error code of an answer -> stats counter
    "rate_limit_exceeded": "rate_limited",
    "insufficient_quota": "quota_rejected",
    "model_not_found": "model_not_found",
}


def _seconds(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, got {value!r}") from None


def _payload(value: Any) -> str:
    if value not in ("small", "noise"):
        raise ValueError(f"image_payload must be 'small' or 'noise', got {value!r}")
    return value


SETTINGS = {  # configure() key -> parser
    "image_latency_s": _seconds,
    "response_latency_s": _seconds,
    "timeout_fault_s": _seconds,
    "image_payload": _payload,
    **AccountLimits.RATE_SETTINGS,
    "shut_down_models": parse_models,
    "quota_exhausted": parse_bool,
}


@dataclass
class FaultRule:
    endpoint: str
    match: str
    fault: str
    times: int | None = None
    used: int = 0


@dataclass
class ServerState:
    image_latency_s: float = 0.0
    response_latency_s: float = 0.0
    image_payload: str = "small"
    timeout_fault_s: float = 5.0
    limits: AccountLimits = field(default_factory=AccountLimits)
    rules: list[FaultRule] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    counted_markers: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    in_flight: Counter = field(default_factory=Counter)  # endpoint -> requests being answered now
    max_in_flight: Counter = field(default_factory=Counter)  # endpoint -> the most at once since the last reset
    lock: threading.Lock = field(default_factory=threading.Lock)


def configure(state: ServerState, settings: dict) -> None:
    """Applies all settings or, when one is unknown or invalid, none (ValueError)."""
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    parsed = {name: SETTINGS[name](value) for name, value in settings.items()}
    with state.lock:
        for name, value in parsed.items():
            if name in AccountLimits.SETTINGS:
                state.limits.configure(name, value)
            else:
                setattr(state, name, value)


def reset(state: ServerState) -> None:
    """Forgets rules, the request log and counters, and frees the whole images-per-minute limit; keeps settings."""
    with state.lock:
        state.rules.clear()
        state.log.clear()
        state.counted_markers.clear()
        state.stats.clear()
        state.faults.clear()
        state.max_in_flight.clear()
        state.limits.refill()


def stats(state: ServerState) -> dict:
    with state.lock:
        return {
            "images": state.stats["images"],
            "responses": state.stats["responses"],
            "attempts": state.stats["attempts"],
            "faults": dict(state.faults),
            "rate_limited": state.stats["rate_limited"],
            "quota_rejected": state.stats["quota_rejected"],
            "model_not_found": state.stats["model_not_found"],
            "max_in_flight": dict(state.max_in_flight),
            "in_flight": dict(state.in_flight),
            "rate_limit": dict(state.limits.rate_limit),  # what a test or benchmark set over HTTP, read back
        }


def arrived(state: ServerState, endpoint: str) -> None:
    with state.lock:
        state.in_flight[endpoint] += 1
        state.max_in_flight[endpoint] = max(state.max_in_flight[endpoint], state.in_flight[endpoint])


def left(state: ServerState, endpoint: str) -> None:
    with state.lock:
        state.in_flight[endpoint] -= 1


def record_answer(state: ServerState, endpoint: str, entry: dict, status: int, payload: Any) -> None:
    """Counts an answer: successes per endpoint, rate-limit, quota and model-not-found errors by their code."""
    code = (payload.get("error") or {}).get("code") if isinstance(payload, dict) else None
    with state.lock:
        entry["status"] = status
        if status == 200:
            state.stats[endpoint] += 1
        elif code in ERROR_STATS:
            state.stats[ERROR_STATS[code]] += 1
