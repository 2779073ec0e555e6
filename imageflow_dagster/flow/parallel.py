"""Independent network calls of one job, run side by side: the boto3 and OpenAI clients are thread-safe, and each
call mostly waits on the network."""

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# Enough to overlap a job's bookkeeping calls (HEADs, artifact rows); below the boto3 pool size.
BOOKKEEPING_WORKERS = 8


def parallel_map(
    call: Callable[[Item], Result], items: Iterable[Item], workers: int, name: str = "imageflow"
) -> list[Result]:
    """`call` on every item, at most `workers` at a time; results in the items' order; the first error raises."""
    items = list(items)
    if len(items) <= 1 or workers <= 1:
        return [call(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=name) as pool:
        return list(pool.map(call, items))
