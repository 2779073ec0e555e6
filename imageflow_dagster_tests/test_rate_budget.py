"""The account-wide rate budget on DynamoDB (moto over HTTP): reservations, refusals, learning, per-model limits,
and what a 429 does to calls already waiting for their slot."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from imageflow_dagster.local.openai_server import LocalOpenAIServer
from imageflow_dagster.resources.openai_retry import SLOT_MARGIN_S, CallPolicy, CallStats
from imageflow_dagster.resources.rate_budget import Budget, BudgetExhausted, OpenAIRateBudget


def make_budget(db, settings, **config) -> OpenAIRateBudget:
    return OpenAIRateBudget(dynamodb=db, table=settings.rate_limits_table, **config)


def stored_tat(db, settings, key: str = "images") -> float:
    return float(db.get_item(settings.rate_limits_table, {"budget": key})["tat"])


def test_a_minute_of_images_goes_at_once_then_one_per_interval(db, settings):
    budget = make_budget(db, settings, images_per_minute=30)
    images = budget.budget("images", "gpt-image-2.6-sunburst")
    waits = [budget.reserve(images, 1, max_wait_s=600) for _ in range(32)]
    assert waits[:30] == [0.0] * 30
    assert 1.0 < waits[30] <= 2.0 and 3.0 < waits[31] <= 4.0  # slots 2 s apart at 30/min


def test_concurrent_reservations_from_many_clients_never_share_a_slot(db, settings):
    def reserve_four(_):
        budget = make_budget(db, settings, images_per_minute=60)  # one client per thread, like separate runs
        return [budget.reserve(budget.budget("images", "m"), 1, max_wait_s=600) for _ in range(4)]

    started = time.time()
    with ThreadPoolExecutor(16) as pool:
        waits = sorted(w for batch in pool.map(reserve_four, range(16)) for w in batch)
    # 64 reservations moved the budget by exactly 64 one-second slots from the first one: none was lost.
    first_reservation = stored_tat(db, settings) - 64
    assert started <= first_reservation <= time.time()
    assert waits[:60] == [0.0] * 60 and 0 < waits[-1] <= 4.0


def test_a_slot_beyond_the_patience_is_refused_and_not_taken(db, settings):
    budget = make_budget(db, settings, images_per_minute=60)
    images = budget.budget("images", "m")
    for _ in range(61):
        budget.reserve(images, 1, max_wait_s=600)
    before = stored_tat(db, settings)
    with pytest.raises(BudgetExhausted):
        budget.reserve(images, 1, max_wait_s=0.0)
    assert stored_tat(db, settings) == before  # the refused call took no slot
    budget.reserve(images, 1, max_wait_s=600)
    assert stored_tat(db, settings) == pytest.approx(before + 1, abs=1e-6)


def test_a_429_pauses_every_client_and_teaches_the_limit(db, settings):
    unknown = make_budget(db, settings)
    images = unknown.budget("images", "m")
    assert images.per_minute is None and unknown.reserve(images, 1, max_wait_s=600) == 0.0
    unknown.slow_down(images, retry_after_s=3.0, learned_per_minute=None)
    other_client = make_budget(db, settings)
    assert 2.5 < other_client.reserve(images, 1, max_wait_s=600) <= 4.0  # paused, plus up to 1 s of spread

    other_client.slow_down(images, retry_after_s=3.0, learned_per_minute=30)
    assert db.get_item(settings.rate_limits_table, {"budget": "images"})["per_minute"] == 30
    first, second = (unknown.reserve(images, 1, max_wait_s=600) for _ in range(2))
    assert 2.5 < first <= 3.0 and 4.5 < second <= 5.0  # learned 30/min: 2 s apart after the pause


def start_calls(budget: OpenAIRateBudget, images: Budget, count: int) -> tuple[list[threading.Thread], list[float]]:
    """`count` calls through the retry policy, each in its own thread like a run's images; each records when it
    went out. Returns once every one holds its slot (or its pause) and sleeps."""
    went_out: list[float] = []
    policy = CallPolicy(budget, max_retries=0, patience_s=600)
    threads = [
        threading.Thread(target=policy.run, args=(lambda: went_out.append(time.time()), images, 1, CallStats()))
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.1)  # ample for one UpdateItem or GetItem each on moto
    return threads, went_out


def refused_elsewhere(db, settings, images: Budget, retry_after_s: float, **config) -> float:
    """Another run's call answered 429 with `retry_after_s`; returns when the pause ends."""
    until = time.time() + retry_after_s
    make_budget(db, settings, **config).slow_down(images, retry_after_s, learned_per_minute=None)
    return until


def test_a_call_scheduled_before_a_429_waits_for_the_pause(db, settings):
    budget = make_budget(db, settings, images_per_minute=300)
    images = budget.budget("images", "m")
    budget.reserve(images, 300, max_wait_s=600)  # the minute's 300 images at once: the next slot is 0.2 s away
    threads, went_out = start_calls(budget, images, 1)
    pause_ends = refused_elsewhere(db, settings, images, 1.0, images_per_minute=300)
    threads[0].join()
    assert went_out[0] >= pause_ends  # not at its slot, 0.2 s in: OpenAI had said its bucket was empty


def test_a_429_drains_the_bucket_model_for_calls_scheduled_before_and_after_it(db, settings):
    budget = make_budget(db, settings, images_per_minute=300)
    images = budget.budget("images", "m")
    budget.reserve(images, 300, max_wait_s=600)
    scheduled, went_out = start_calls(budget, images, 4)  # slots 0.2 s apart, the first 0.2 s away
    pause_ends = refused_elsewhere(db, settings, images, 1.0, images_per_minute=300)
    reserved_after, later_went_out = start_calls(budget, images, 1)
    for thread in scheduled + reserved_after:
        thread.join()
    times = sorted(went_out + later_went_out)
    # Every call after the pause, one slot apart as the emptied bucket refills (a little slack for threads).
    assert len(times) == 5 and times[0] >= pause_ends
    assert all(b - a >= 0.2 - 0.05 for a, b in zip(times, times[1:])), times
    assert times[0] <= pause_ends + SLOT_MARGIN_S + 0.3  # the first slot starts when the pause ends


def test_with_the_limit_unknown_a_call_waiting_out_a_pause_waits_for_a_longer_one(db, settings):
    budget = make_budget(db, settings)
    images = budget.budget("images", "m")
    refused_elsewhere(db, settings, images, 0.3)
    threads, went_out = start_calls(budget, images, 1)  # waits for the pause, plus up to 1 s of spread
    pause_ends = refused_elsewhere(db, settings, images, 2.0)
    threads[0].join()
    assert went_out[0] >= pause_ends


def test_models_with_their_own_limit_get_their_own_budget(db, settings, tmp_path):
    limits = tmp_path / "limits.json"
    limits.write_text(json.dumps({"images_per_minute": {"gpt-image-2.6-flare": 5}}))
    budget = make_budget(db, settings, images_per_minute=30, tokens_per_minute=1000, limits_file=str(limits))
    assert budget.budget("images", "gpt-image-2.6-flare") == Budget("images:gpt-image-2.6-flare", 5.0)
    assert budget.budget("images", "gpt-image-2.6-sunburst") == Budget("images", 30.0)
    assert budget.budget("tokens", "gpt-5.2") == Budget("tokens", 1000.0)


def test_openais_count_of_what_is_left_holds_the_budget_back(db, settings):
    """A rolling minute gives nothing back after its first minute where a continuous refill would: every answer's
    `x-ratelimit-remaining-images` pulls the shared model down to OpenAI's count, for a configured limit and for
    one learned from the headers of the first answer."""
    with LocalOpenAIServer(images_per_minute=30, rate_limit_algorithm="rolling_window") as server:
        with openai.OpenAI(api_key="k", base_url=server.base_url, max_retries=0) as sdk:

            def draw(n: int = 1):
                return sdk.images.with_raw_response.generate(model="gpt-image-1.5", prompt="p", quality="low", n=n)

            for images in (Budget("images:configured", 30.0), Budget("images:learned", None)):
                server.configure(images_per_minute=30)  # the whole minute free again
                for n in (10, 10, 8):  # another process's calls: 28 of the minute's 30
                    draw(n)
                policy = CallPolicy(make_budget(db, settings), max_retries=0, patience_s=600)
                answer = policy.run(draw, images, 1, CallStats())
                assert len(answer.data) == 1  # the parsed answer, not the raw one
                state = db.get_item(settings.rate_limits_table, {"budget": images.key})
                assert "per_minute" not in state if images.per_minute else state["per_minute"] == 30
                # One image left on the server: the model holds one, not the 29 it counted on.
                assert policy.budget.reserve(images, 1, max_wait_s=600) == 0.0
                assert 1.5 < policy.budget.reserve(images, 1, max_wait_s=600) <= 2.0
