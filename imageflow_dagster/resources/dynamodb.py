"""DynamoDB resource on dagster-aws's boto3 configuration base, with plain-Python items in and out."""

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import PrivateAttr

from imageflow_dagster.models.numbers import from_dynamo, to_dynamo
from imageflow_dagster.resources.aws import DEFAULT_POOL_SIZE, shared_client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
BATCH_GET_LIMIT = 100  # keys per BatchGetItem, DynamoDB's limit


class TableError(RuntimeError):
    """A DynamoDB call failed in a way retries did not fix (missing table, access denied, ...)."""


def serialize_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize_item(raw: dict[str, Any]) -> dict[str, Any]:
    return from_dynamo({k: _deserializer.deserialize(v) for k, v in raw.items()})


def resume_after(key: dict[str, Any]) -> dict[str, Any]:
    """The page key that resumes a query or scan after the item with this key (its table key, plus the index's
    key for a query on an index). Page keys stay in DynamoDB's form: callers keep them as opaque, JSON-safe
    tokens, as they keep the `LastEvaluatedKey` a page returns."""
    return serialize_item(key)


def _values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in values.items()}


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDBResource(ResourceWithBoto3Configuration):
    """Table names and the claim lease come from settings.py (the seed's variables), which holds their defaults;
    resources/__init__.py builds the resource."""

    jobs_table: str
    workflows_table: str
    forms_table: str
    submissions_table: str
    artifacts_table: str
    usage_records_table: str
    # Optional seed tables, left out of `table_names()`: the tenant's prompt overrides and the UI's bell.
    user_settings_table: str
    notifications_table: str
    max_pool_connections: int = DEFAULT_POOL_SIZE
    claim_lease_s: int
    """How long a claimed job stays reserved for its run before another claimer may take it over."""

    _client = PrivateAttr(default=None)
    _lock = PrivateAttr(default_factory=threading.Lock)

    def get_client(self):
        with self._lock:
            if self._client is None:
                self._client = shared_client(
                    "dynamodb",
                    region_name=self.region_name,
                    endpoint_url=self.endpoint_url,
                    max_attempts=self.max_attempts,
                    max_pool_connections=self.max_pool_connections,
                    profile_name=self.profile_name,
                    aws_access_key_id=self.aws_access_key_id,
                    aws_secret_access_key=self.aws_secret_access_key,
                    aws_session_token=self.aws_session_token,
                )
            return self._client

    def get_item(self, table: str, key: dict[str, Any], consistent: bool = True) -> dict[str, Any] | None:
        try:
            raw = self.get_client().get_item(TableName=table, Key=serialize_item(key), ConsistentRead=consistent)
        except ClientError as exc:
            raise _table_error("GetItem", table, exc) from exc
        return deserialize_item(raw["Item"]) if "Item" in raw else None

    def put_item(self, table: str, item: dict[str, Any], condition: str | None = None) -> bool:
        """Put `item`; with a condition, return False instead of raising when the condition fails."""
        kwargs: dict[str, Any] = {"TableName": table, "Item": serialize_item(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            self.get_client().put_item(**kwargs)
            return True
        except ClientError as exc:
            if condition and is_conditional_failure(exc):
                return False
            raise _table_error("PutItem", table, exc) from exc

    def update_item(
        self,
        table: str,
        key: dict[str, Any],
        *,
        set_values: dict[str, Any] | None = None,
        set_if_absent: dict[str, Any] | None = None,
        increment: dict[str, Any] | None = None,
        remove: list[str] | None = None,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        return_new: bool = False,
    ) -> dict[str, Any] | None:
        """SET/REMOVE attributes by name (`increment` adds to a number the item must already hold); returns the new
        item when asked, None when the condition failed. The condition names attributes as `#name`."""
        expression, names, values = _update_expression(set_values, set_if_absent, increment, remove)
        names.update(_condition_names(condition))
        values.update(condition_values or {})
        kwargs: dict[str, Any] = {
            "TableName": table,
            "Key": serialize_item(key),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW" if return_new else "NONE",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = _values(values)
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            response = self.get_client().update_item(**kwargs)
        except ClientError as exc:
            if condition and is_conditional_failure(exc):
                return None
            raise _table_error("UpdateItem", table, exc) from exc
        return deserialize_item(response.get("Attributes", {})) if return_new else {}

    def query_index(
        self,
        table: str,
        index: str,
        key_condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        limit: int,
        start_key: dict[str, Any] | None = None,
        ascending: bool = True,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a Query on `index`: its items and the page key to continue from (None at the index's end)."""
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _values(values),
            "Limit": limit,
            "ScanIndexForward": ascending,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            page = self.get_client().query(**kwargs)
        except ClientError as exc:
            raise _table_error("Query", table, exc, index) from exc
        return [deserialize_item(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def scan_page(
        self,
        table: str,
        filter_expression: str,
        names: dict[str, str],
        values: dict[str, Any],
        *,
        limit: int | None = None,
        start_key: dict[str, Any] | None = None,
        projection: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a Scan: the items that match the filter among the (at most `limit`) items it read, and the
        page key to continue from (None at the table's end)."""
        kwargs: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": filter_expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _values(values),
        }
        if limit:
            kwargs["Limit"] = limit
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        if projection:
            kwargs["ProjectionExpression"] = projection
        try:
            page = self.get_client().scan(**kwargs)
        except ClientError as exc:
            raise _table_error("Scan", table, exc) from exc
        return [deserialize_item(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def scan(
        self, table: str, filter_expression: str, names: dict[str, str], values: dict[str, Any],
        projection: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of `table` that matches the filter, page by page (1 MB each, DynamoDB's limit)."""
        start_key = None
        while True:
            items, start_key = self.scan_page(
                table, filter_expression, names, values, start_key=start_key, projection=projection
            )
            yield from items
            if not start_key:
                return

    def batch_get(
        self, table: str, keys: list[dict[str, Any]], attributes: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """The items of `keys` that exist, in no set order, with only `attributes` when given: BATCH_GET_LIMIT keys
        per call, each key asked once (BatchGetItem refuses duplicates)."""
        unique = list({json.dumps(key, sort_keys=True, default=str): key for key in keys}.values())
        projection: dict[str, Any] = {}
        if attributes:
            names = {f"#p{i}": attribute for i, attribute in enumerate(attributes)}
            projection = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        found: list[dict[str, Any]] = []
        for first in range(0, len(unique), BATCH_GET_LIMIT):
            chunk = [serialize_item(key) for key in unique[first : first + BATCH_GET_LIMIT]]
            found += self._batch_get_chunk(table, {table: {"Keys": chunk, **projection}})
        return found

    def _batch_get_chunk(self, table: str, request: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pause_s = 0.05
        while request:
            try:
                response = self.get_client().batch_get_item(RequestItems=request)
            except ClientError as exc:
                raise _table_error("BatchGetItem", table, exc) from exc
            found += [deserialize_item(raw) for raw in response.get("Responses", {}).get(table, [])]
            request = response.get("UnprocessedKeys") or {}
            if request:
                # Keys left unprocessed mean the table is throttling: asking again at once would be refused again.
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 1.0)
        return found

    def table_names(self) -> list[str]:
        return [
            self.jobs_table,
            self.workflows_table,
            self.forms_table,
            self.submissions_table,
            self.artifacts_table,
            self.usage_records_table,
        ]


def _update_expression(
    set_values: dict[str, Any] | None,
    set_if_absent: dict[str, Any] | None,
    increment: dict[str, Any] | None,
    remove: list[str] | None,
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The UpdateExpression with its attribute names and values, each attribute behind a placeholder (reserved
    words such as `status` cannot appear bare)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    clauses: list[str] = []
    forms = (("s", set_values, "{n} = {v}"), ("a", set_if_absent, "{n} = if_not_exists({n}, {v})"),
             ("i", increment, "{n} = {n} + {v}"))
    for prefix, attributes, form in forms:
        for i, (attribute, value) in enumerate((attributes or {}).items()):
            names[f"#{prefix}{i}"], values[f":{prefix}{i}"] = attribute, value
            clauses.append(form.format(n=f"#{prefix}{i}", v=f":{prefix}{i}"))
    expression = ("SET " + ", ".join(clauses)) if clauses else ""
    if remove:
        names.update({f"#r{i}": attribute for i, attribute in enumerate(remove)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
    return expression.strip(), names, values


def _condition_names(condition: str | None) -> dict[str, str]:
    """Conditions refer to attributes as `#name`; map each placeholder to its attribute name."""
    if not condition:
        return {}
    return {f"#{name}": name for name in re.findall(r"#([A-Za-z_][A-Za-z0-9_]*)", condition)}


def _table_error(operation: str, table: str, exc: ClientError, index: str | None = None) -> TableError:
    error = exc.response.get("Error", {})
    code, message = error.get("Code", ""), error.get("Message", "")
    # These two codes' messages say what is missing or wrong in the request (an index, an expression); other codes'
    # messages may name the caller's identity, so they stay out of job rows and logs.
    if code == "ResourceNotFoundException" and index:
        return TableError(f"DynamoDB table {table!r} or its index {index!r} does not exist ({operation}): {message}")
    if code == "ResourceNotFoundException":
        return TableError(f"DynamoDB table {table!r} does not exist ({operation})")
    if code == "ValidationException":
        return TableError(f"DynamoDB {operation} on table {table!r} failed: {code}: {message}")
    return TableError(f"DynamoDB {operation} on table {table!r} failed: {code}")
