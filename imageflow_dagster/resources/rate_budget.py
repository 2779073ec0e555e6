"""One OpenAI rate budget for the whole account, shared by every run on every machine through DynamoDB.

Each budget is one item holding a GCRA "theoretical arrival time" (`tat`): the budget is a bucket of a minute's
worth of units that refills continuously, like OpenAI's own limiter. A call reserves its units with one
conditional UpdateItem and learns from the returned `tat` how long to wait; nobody polls, nobody holds a lock,
and a crashed run leaves nothing to clean up.

A 429 is evidence that OpenAI's bucket is empty, whatever algorithm the server runs (a continuous refill, a
rolling minute, refused calls counted or not): it sets `paused_until` to the end of the server's `retry-after`
and drains the model (`tat` pushed so the next slot starts there), so every run slows down, not only the thread
that was refused. A call that slept for its slot reads `paused_until` again before it goes out (one GetItem): a
pause that began while it slept means its slot was counted on a bucket OpenAI says is empty, and it takes a new
one. With no limit configured and none learned from `x-ratelimit-limit-*`, `paused_until` is all there is, read
first by every call.

Every successful answer carries OpenAI's own count (`x-ratelimit-remaining-*` as of when the call went out), and
the model is never allowed to hold more than that (`observe`). A continuous refill and a rolling minute look the
same for the first minute and part ways after it: the bucket refills, the rolling minute gives nothing back until
its first calls leave it. Without this the model kept refilling while a rolling minute had none left, and every
call booked on that refill met a 429 at once, in parallel, before the first one could pause the others.
"""

import json
import random
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import dagster as dg

from imageflow_dagster.resources.dynamodb import DynamoDBResource

BudgetKind = Literal["images", "tokens"]
WINDOW_S = 60.0


class BudgetExhausted(RuntimeError):
    """The next free slot is further away than the caller is willing to wait."""

    def __init__(self, wait_s: float):
        super().__init__(f"the next free slot is {wait_s:.0f} s away")
        self.wait_s = wait_s


@dataclass(frozen=True)
class Budget:
    key: str
    per_minute: float | None  # configured; None = learn it from OpenAI's answers


class OpenAIRateBudget(dg.ConfigurableResource):
    """`images_per_minute` / `tokens_per_minute` set account-wide limits (per-model ones come from the limits
    file); unset, the limit is learned from OpenAI's 429s and rate-limit headers."""

    dynamodb: DynamoDBResource
    table: str  # IMAGEFLOW_RATE_LIMITS_TABLE (settings.py)
    images_per_minute: float | None = None
    tokens_per_minute: float | None = None
    limits_file: str | None = None

    def budget(self, kind: BudgetKind, model: str) -> Budget:
        per_model = _per_model_limits(self.limits_file or "")[f"{kind}_per_minute"]
        if model in per_model:
            return Budget(f"{kind}:{model}", float(per_model[model]))
        account = self.images_per_minute if kind == "images" else self.tokens_per_minute
        return Budget(kind, float(account) if account else None)

    def reserve(self, budget: Budget, units: float, max_wait_s: float) -> float:
        """Take `units` from the budget; return the seconds to wait before calling (0 when free now)."""
        now = time.time()
        if budget.per_minute is None:
            state = self._read(budget.key)
            learned = float(state["per_minute"]) if "per_minute" in state else None
            paused = max(0.0, float(state.get("paused_until", 0)) - now)
            if learned is None:
                if paused > max_wait_s:
                    raise BudgetExhausted(paused)
                # Spread the waiters over a second so a pause does not end in a thundering herd.
                return paused + random.uniform(0, 1.0) if paused else 0.0
            budget = Budget(budget.key, learned)
        return self._take(budget, min(units, budget.per_minute), now, max_wait_s)

    def slow_down(self, budget: Budget, retry_after_s: float, learned_per_minute: float | None) -> None:
        """OpenAI refused a call, so its bucket is empty: nobody calls again before `retry_after_s` has passed,
        and the model of the bucket holds no more than what refills from then on."""
        until = time.time() + retry_after_s
        limit = budget.per_minute
        if limit is None and learned_per_minute:
            self._update(budget.key, set_values={"per_minute": learned_per_minute})
            limit = learned_per_minute
        state = self._update(budget.key, set_values={"paused_until": until}, **_only_raising("paused_until", until))
        limit = limit or (state or {}).get("per_minute")  # no state: a later pause, set by whoever learned it
        if limit:
            # Empty until `until`: the next unit's slot starts there. Reservations already past it keep theirs.
            tat = until + WINDOW_S - WINDOW_S / float(limit)
            self._update(budget.key, set_values={"tat": tat}, **_only_raising("tat", tat))

    def observe(self, budget: Budget, sent_at: float, remaining: float, reported_limit: float | None) -> None:
        """OpenAI answered a call sent at `sent_at` and says `remaining` units were left after it: push the model
        back so that it holds no more (it may hold less: calls booked since then are still on top of it)."""
        limit = budget.per_minute
        if limit is None and reported_limit:
            self._update(budget.key, set_values={"per_minute": reported_limit})
            limit = reported_limit
        if not limit:
            return
        tat = sent_at + WINDOW_S - min(remaining, limit) * WINDOW_S / float(limit)
        self._update(budget.key, set_values={"tat": tat}, **_only_raising("tat", tat))

    def pause_left(self, budget: Budget) -> float:
        """Seconds until the pause the latest 429 set ends (0 when none is in force)."""
        return max(0.0, float(self._read(budget.key).get("paused_until", 0)) - time.time())

    # ---- GCRA on one item
    def _take(self, budget: Budget, units: float, now: float, max_wait_s: float) -> float:
        increment = units * WINDOW_S / budget.per_minute
        latest_tat = now + WINDOW_S + max_wait_s  # a reservation starting later than this is not taken
        for _ in range(16):
            state = self._update(
                budget.key, increment={"tat": increment}, condition="#tat >= :now AND #tat <= :latest",
                condition_values={":now": now, ":latest": latest_tat - increment},
            )
            if state is None:
                state = self._update(budget.key, set_values={"tat": now + increment}, **_only_raising("tat", now))
            if state is not None:
                slot = float(state["tat"]) - WINDOW_S
                paused = float(state.get("paused_until", 0))
                return max(0.0, slot - now, paused - now)
            current = float(self._read(budget.key).get("tat", 0))
            if current - WINDOW_S - now > max_wait_s - increment:
                raise BudgetExhausted(current - WINDOW_S - now)
        raise RuntimeError(f"rate budget {budget.key}: could not reserve under contention")

    def _read(self, key: str) -> dict:
        return self.dynamodb.get_item(self.table, {"budget": key}) or {}

    def _update(self, key: str, **update) -> dict | None:
        """One UpdateItem on the budget's item: the item's numbers after it, None when its condition failed."""
        item = self.dynamodb.update_item(self.table, {"budget": key}, return_new=True, **update)
        if item is None:
            return None
        return {name: float(value) for name, value in item.items() if _is_number(value)}


def _only_raising(attribute: str, value: float) -> dict:
    """The condition that lets a write set `attribute` only when the item holds none or a smaller one."""
    return {
        "condition": f"attribute_not_exists(#{attribute}) OR #{attribute} < :bound",
        "condition_values": {":bound": value},
    }


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=4)
def _per_model_limits(path: str) -> dict[str, dict[str, float]]:
    """Per-model limits: the shipped `rate_limits.json`, or the file named by IMAGEFLOW_RATE_LIMITS_FILE."""
    if path:
        raw = json.loads(Path(path).read_text())
    else:
        raw = json.loads(resources.files("imageflow_dagster").joinpath("rate_limits.json").read_text())
    return {kind: dict(raw.get(kind) or {}) for kind in ("images_per_minute", "tokens_per_minute")}
