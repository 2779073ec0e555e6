"""DynamoDB resource on dagster-aws's boto3 configuration base, with plain-Python items in and out."""

import re
import threading
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from dagster_aws.utils import ResourceWithBoto3Configuration
from pydantic import PrivateAttr

from imageflow_dagster.resources.aws import DEFAULT_POOL_SIZE, shared_client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class TableError(RuntimeError):
    """A DynamoDB call failed in a way retries did not fix (missing table, access denied, ...)."""


def to_dynamo(value: Any) -> Any:
    """Floats become Decimal (DynamoDB's only number type); everything else passes through."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Decimal becomes int or float at the boundary, so nothing downstream meets a Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [from_dynamo(v) for v in value]
    return value


def serialize_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in item.items() if v is not None}


def deserialize_item(raw: dict[str, Any]) -> dict[str, Any]:
    return from_dynamo({k: _deserializer.deserialize(v) for k, v in raw.items()})


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoDBResource(ResourceWithBoto3Configuration):
    """Table names default to the seed's; set them from the seed's environment variables."""

    jobs_table: str = "leadmagnet-jobs"
    workflows_table: str = "leadmagnet-workflows"
    forms_table: str = "leadmagnet-forms"
    submissions_table: str = "leadmagnet-submissions"
    artifacts_table: str = "leadmagnet-artifacts"
    usage_records_table: str = "leadmagnet-usage-records"
    # Optional seed tables, left out of `table_names()`: the tenant's prompt overrides and the UI's bell.
    user_settings_table: str = "leadmagnet-user-settings"
    notifications_table: str = "leadmagnet-notifications"
    max_pool_connections: int = DEFAULT_POOL_SIZE
    claim_lease_s: int = 3600
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
        remove: list[str] | None = None,
        condition: str | None = None,
        condition_values: dict[str, Any] | None = None,
        return_new: bool = False,
    ) -> dict[str, Any] | None:
        """SET/REMOVE attributes by name; returns the new item when asked, None when the condition failed."""
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses: list[str] = []
        for i, (attr, value) in enumerate((set_values or {}).items()):
            names[f"#s{i}"], values[f":s{i}"] = attr, value
            clauses.append(f"#s{i} = :s{i}")
        for i, (attr, value) in enumerate((set_if_absent or {}).items()):
            names[f"#a{i}"], values[f":a{i}"] = attr, value
            clauses.append(f"#a{i} = if_not_exists(#a{i}, :a{i})")
        expression = ("SET " + ", ".join(clauses)) if clauses else ""
        if remove:
            for i, attr in enumerate(remove):
                names[f"#r{i}"] = attr
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        for placeholder, attr in _condition_names(condition).items():
            names[placeholder] = attr
        values.update(condition_values or {})
        kwargs: dict[str, Any] = {
            "TableName": table,
            "Key": serialize_item(key),
            "UpdateExpression": expression.strip(),
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW" if return_new else "NONE",
        }
        if values:
            kwargs["ExpressionAttributeValues"] = {k: _serializer.serialize(to_dynamo(v)) for k, v in values.items()}
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
        kwargs: dict[str, Any] = {
            "TableName": table,
            "IndexName": index,
            "KeyConditionExpression": key_condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: _serializer.serialize(to_dynamo(v)) for k, v in values.items()},
            "Limit": limit,
            "ScanIndexForward": ascending,
        }
        if start_key:
            kwargs["ExclusiveStartKey"] = start_key
        try:
            page = self.get_client().query(**kwargs)
        except ClientError as exc:
            raise _table_error("Query", table, exc) from exc
        return [deserialize_item(i) for i in page.get("Items", [])], page.get("LastEvaluatedKey")

    def scan(
        self, table: str, filter_expression: str, names: dict[str, str], values: dict[str, Any],
        projection: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every row of `table` that matches the filter, page by page (1 MB each, DynamoDB's limit)."""
        kwargs: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": filter_expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {k: _serializer.serialize(to_dynamo(v)) for k, v in values.items()},
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
        while True:
            try:
                page = self.get_client().scan(**kwargs)
            except ClientError as exc:
                raise _table_error("Scan", table, exc) from exc
            yield from (deserialize_item(i) for i in page.get("Items", []))
            if not page.get("LastEvaluatedKey"):
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def check_tables(self) -> None:
        for table in self.table_names():
            try:
                self.get_client().describe_table(TableName=table)
            except ClientError as exc:
                raise _table_error("DescribeTable", table, exc) from exc

    def table_names(self) -> list[str]:
        return [
            self.jobs_table,
            self.workflows_table,
            self.forms_table,
            self.submissions_table,
            self.artifacts_table,
            self.usage_records_table,
        ]


def _condition_names(condition: str | None) -> dict[str, str]:
    """Conditions refer to attributes as `#name`; map each placeholder to its attribute name."""
    if not condition:
        return {}
    return {f"#{name}": name for name in re.findall(r"#([A-Za-z_][A-Za-z0-9_]*)", condition)}


def _table_error(operation: str, table: str, exc: ClientError) -> TableError:
    code = exc.response.get("Error", {}).get("Code", "")
    if code == "ResourceNotFoundException":
        return TableError(f"DynamoDB table {table!r} does not exist ({operation})")
    return TableError(f"DynamoDB {operation} on table {table!r} failed: {code}")
