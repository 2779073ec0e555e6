"""DynamoDB's numbers and plain Python's: the one rule for both directions. DynamoDBResource applies it to every
item it reads or writes; a webhook body applies it again to whatever values it is handed."""

from decimal import Decimal
from typing import Any


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
    """Decimal becomes int or float, recursively, so nothing past the boundary meets a Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [from_dynamo(v) for v in value]
    return value
