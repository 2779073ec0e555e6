"""Finding jobs that wait to be processed: a paginated Query on the jobs status GSI, oldest first, resumable.

The cursor keeps, per status, the key after which the next tick continues; when a pass reaches the end of the
index it starts again from the oldest job, so jobs set back to `processing` (reruns) and expired claims are
seen again. A table without the index can be Scanned instead (slow on large tables: it reads every item).
"""

import json
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeSerializer

from imageflow_dagster.resources.dynamodb import DynamoDBResource, deserialize_item

_serializer = TypeSerializer()
PAGE_SIZE = 100


@dataclass
class QueueCursor:
    after: dict[str, dict | None] = field(default_factory=dict)  # status -> raw ExclusiveStartKey

    @classmethod
    def parse(cls, raw: str | None) -> "QueueCursor":
        if not raw:
            return cls()
        try:
            return cls(after=json.loads(raw).get("after", {}))
        except (ValueError, AttributeError):
            return cls()  # an unreadable cursor restarts from the oldest job, never breaks the sensor

    def dump(self) -> str:
        return json.dumps({"after": self.after}, sort_keys=True)


@dataclass
class WaitingJobs:
    status: str
    jobs: list[dict[str, Any]]
    next_start: dict | None  # where to continue once every job here was considered; None: a new pass


def waiting_jobs(
    db: DynamoDBResource, status: str, index: str | None, cursor: QueueCursor, max_items: int
) -> WaitingJobs:
    """Up to `max_items` jobs in `status`, continuing from the cursor (unchanged: see `advance`)."""
    found: list[dict[str, Any]] = []
    start = cursor.after.get(status)
    while len(found) < max_items:
        page, last_key = _page(db, status, index, start, min(PAGE_SIZE, max_items - len(found)))
        found.extend(page)
        if not last_key:
            start = None  # end of the index: the next tick starts a new pass
            break
        start = last_key
    return WaitingJobs(status, found, start)


def advance(cursor: QueueCursor, batch: WaitingJobs, considered: int, index: str | None) -> None:
    """Move the cursor past the first `considered` jobs of `batch`: a tick that stops early (at its run limit)
    leaves the rest for the next tick, which starts with the first job it did not consider."""
    if considered >= len(batch.jobs):
        cursor.after[batch.status] = batch.next_start
    elif considered:
        cursor.after[batch.status] = _start_after(batch.jobs[considered - 1], index)


def _start_after(item: dict[str, Any], index: str | None) -> dict:
    key = {"job_id": item["job_id"]}
    if index:
        key.update(status=item["status"], created_at=item.get("created_at", ""))
    return {name: _serializer.serialize(value) for name, value in key.items()}


def _page(
    db: DynamoDBResource, status: str, index: str | None, start: dict | None, limit: int
) -> tuple[list[dict[str, Any]], dict | None]:
    if index:
        kwargs: dict[str, Any] = {
            "TableName": db.jobs_table,
            "IndexName": index,
            "KeyConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
            "ScanIndexForward": True,
            "Limit": limit,
        }
        operation = db.get_client().query
    else:
        kwargs = {
            "TableName": db.jobs_table,
            "FilterExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": status}},
            "Limit": limit,
        }
        operation = db.get_client().scan
    if start:
        kwargs["ExclusiveStartKey"] = start
    response = operation(**kwargs)
    return [deserialize_item(i) for i in response.get("Items", [])], response.get("LastEvaluatedKey")
