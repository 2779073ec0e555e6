"""Finding jobs that wait to be processed: a paginated Query on the jobs status GSI, oldest first, resumable.

The cursor keeps, per status, the key after which the next tick continues; when a pass reaches the end of the
index it starts again from the oldest job, so jobs set back to `processing` (reruns) and expired claims are
seen again. A table without the index can be Scanned instead (slow on large tables: it reads every item).

Jobs held back for their tenant's share (flow/admission.py) stay unclaimed while the cursor moves on, so one
tenant's backlog never stops the sweep from reaching other tenants' jobs. Until the pass ends, such a tenant's jobs
are claimed only from the front of the index, which each tick then reads again: its oldest waiting jobs are there,
in order, and its later jobs met by the sweep wait behind them.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from imageflow_dagster.resources.dynamodb import DynamoDBResource, resume_after

PAGE_SIZE = 100


@dataclass
class QueueCursor:
    after: dict[str, dict | None] = field(default_factory=dict)  # status -> page key (DynamoDB's form, opaque)
    held: dict[str, list[str]] = field(default_factory=dict)  # status -> tenants held behind `after` this pass

    @classmethod
    def parse(cls, raw: str | None) -> "QueueCursor":
        if not raw:
            return cls()
        try:
            saved = json.loads(raw)
            after, held = saved.get("after", {}), saved.get("held", {})
        except (ValueError, AttributeError):
            return cls()  # an unreadable cursor restarts from the oldest job, never breaks the sensor
        if not isinstance(after, dict) or not isinstance(held, dict):
            return cls()  # the same for a cursor of the wrong shape
        return cls(after=after, held=held)

    def dump(self) -> str:
        saved: dict[str, Any] = {"after": self.after}
        if self.held:
            saved["held"] = self.held
        return json.dumps(saved, sort_keys=True)


@dataclass
class WaitingJobs:
    status: str
    front: list[dict[str, Any]]  # the oldest jobs, read again while tenants are held (empty otherwise)
    sweep: list[dict[str, Any]]  # from the cursor on: what `advance` moves past
    next_start: dict | None  # where to continue once every job of the sweep was considered; None: a new pass
    jobs: list[dict[str, Any]] = field(init=False)  # front then sweep, oldest first, each job once
    front_ids: set[str] = field(init=False)
    front_only_ids: set[str] = field(init=False)  # front jobs the sweep did not read again: behind the cursor

    def __post_init__(self):
        self.front_ids = {job["job_id"] for job in self.front}
        self.jobs = self.front + [job for job in self.sweep if job["job_id"] not in self.front_ids]
        self.front_only_ids = self.front_ids - {job["job_id"] for job in self.sweep}


def waiting_jobs(
    db: DynamoDBResource, status: str, index: str | None, cursor: QueueCursor, max_items: int
) -> WaitingJobs:
    """Up to `max_items` jobs in `status`, continuing from the cursor (unchanged: see `advance`). While tenants are
    held in this pass, half of them are the front: the oldest jobs, where held jobs wait in order."""
    start = cursor.after.get(status)
    front_wanted = start is not None and bool(cursor.held.get(status))  # at a pass's start the sweep is the front
    front, _ = _read(db, status, index, None, max_items // 2) if front_wanted else ([], None)
    sweep, next_start = _read(db, status, index, start, max_items - len(front))
    return WaitingJobs(status, front, sweep, next_start)


def _read(
    db: DynamoDBResource, status: str, index: str | None, start: dict | None, max_items: int
) -> tuple[list[dict[str, Any]], dict | None]:
    found: list[dict[str, Any]] = []
    while len(found) < max_items:
        page, last_key = _page(db, status, index, start, min(PAGE_SIZE, max_items - len(found)))
        found.extend(page)
        if not last_key:
            return found, None  # end of the index: the next tick starts a new pass
        start = last_key
    return found, start


def advance(
    cursor: QueueCursor, batch: WaitingJobs, considered: int, index: str | None, held_tenants: set[str] = frozenset()
) -> None:
    """Move the cursor past the first `considered` jobs of the sweep: a tick that stops early (at its run limit, or
    with no room in Dagster's queue) leaves the rest for the next tick, which starts with the first job it did not
    consider. `held_tenants` left a job waiting behind the new position; a new pass forgets them, since it starts
    from the oldest job and meets every held job again, in order."""
    if considered >= len(batch.sweep):
        cursor.after[batch.status] = batch.next_start
    elif considered:
        cursor.after[batch.status] = _start_after(batch.sweep[considered - 1], index)
    new_pass = considered >= len(batch.sweep) and batch.next_start is None
    held = set() if new_pass else set(cursor.held.get(batch.status, ())) | set(held_tenants)
    if held:
        cursor.held[batch.status] = sorted(held)
    else:
        cursor.held.pop(batch.status, None)


def _start_after(item: dict[str, Any], index: str | None) -> dict:
    key = {"job_id": item["job_id"]}
    if index:
        key.update(status=item["status"], created_at=item.get("created_at", ""))
    return resume_after(key)


def _page(
    db: DynamoDBResource, status: str, index: str | None, start: dict | None, limit: int
) -> tuple[list[dict[str, Any]], dict | None]:
    names, values = {"#status": "status"}, {":status": status}
    if index:
        return db.query_index(db.jobs_table, index, "#status = :status", names, values, limit=limit, start_key=start)
    return db.scan_page(db.jobs_table, "#status = :status", names, values, limit=limit, start_key=start)
