"""flow/job_queue.py without DynamoDB: the sensor's cursor (saved, read back, unreadable) and how a tick
moves it."""

import pytest

from imageflow_dagster.flow.job_queue import QueueCursor, WaitingJobs, advance

INDEX = "gsi_status_created"


def _job(job_id: str, created_at: str = "2026-01-01T00:00:00.000Z") -> dict:
    return {"job_id": job_id, "status": "processing", "created_at": created_at, "tenant_id": "t1"}


def _batch(sweep: list[dict], next_start: dict | None, front: list[dict] = ()) -> WaitingJobs:
    return WaitingJobs("processing", list(front), sweep, next_start)


def test_a_cursor_reads_back_what_it_saved():
    cursor = QueueCursor(
        after={"processing": {"job_id": {"S": "j9"}}, "pending": None}, held={"processing": ["t1"]}
    )
    assert QueueCursor.parse(cursor.dump()) == cursor
    assert QueueCursor().dump() == '{"after": {}}'  # nothing held: the key is left out
    assert QueueCursor.parse(QueueCursor().dump()) == QueueCursor()


@pytest.mark.parametrize("raw", [None, "", "{not json", "[1, 2]", '"text"', "7", "null"])
def test_an_unreadable_cursor_starts_from_the_oldest_job(raw):
    assert QueueCursor.parse(raw) == QueueCursor()


def test_a_cursor_of_the_wrong_shape_starts_from_the_oldest_job():
    assert QueueCursor.parse('{"after": 5}') == QueueCursor()


def test_a_tick_that_considered_the_whole_sweep_continues_where_the_read_stopped():
    cursor, next_start = QueueCursor(), {"job_id": {"S": "j2"}}
    advance(cursor, _batch([_job("j1"), _job("j2")], next_start), considered=2, index=INDEX)
    assert cursor.after == {"processing": next_start}


def test_a_tick_that_stopped_early_continues_after_the_last_job_it_considered():
    cursor = QueueCursor()
    batch = _batch([_job("j1", "2026-01-01T00:00:01.000Z"), _job("j2"), _job("j3")], {"job_id": {"S": "j3"}})
    advance(cursor, batch, considered=1, index=INDEX)
    assert cursor.after["processing"] == {
        "job_id": {"S": "j1"},
        "status": {"S": "processing"},
        "created_at": {"S": "2026-01-01T00:00:01.000Z"},
    }
    advance(cursor, batch, considered=1, index=None)  # a Scan's key is the table's: the job id alone
    assert cursor.after["processing"] == {"job_id": {"S": "j1"}}


def test_a_tick_that_considered_nothing_leaves_the_cursor_where_it_was():
    start = {"job_id": {"S": "j0"}}
    cursor = QueueCursor(after={"processing": start})
    advance(cursor, _batch([_job("j1")], {"job_id": {"S": "j1"}}), considered=0, index=INDEX)
    assert cursor.after == {"processing": start}


def test_held_tenants_are_remembered_until_a_pass_ends():
    cursor = QueueCursor(held={"processing": ["t2"]})
    advance(cursor, _batch([_job("j1")], {"job_id": {"S": "j1"}}), 1, INDEX, held_tenants={"t3", "t1"})
    assert cursor.held == {"processing": ["t1", "t2", "t3"]}
    advance(cursor, _batch([_job("j2")], None), 1, INDEX)  # the end of the index: a new pass meets them again
    assert cursor.held == {} and cursor.after == {"processing": None}
    assert "held" not in cursor.dump()


def test_waiting_jobs_list_the_front_then_the_sweep_each_job_once():
    batch = _batch([_job("j2"), _job("j5")], None, front=[_job("j1"), _job("j2")])
    assert [job["job_id"] for job in batch.jobs] == ["j1", "j2", "j5"]
    assert batch.front_ids == {"j1", "j2"} and batch.front_only_ids == {"j1"}
