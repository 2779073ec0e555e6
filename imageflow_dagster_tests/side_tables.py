"""The seed's user-settings and notifications tables, created in moto as its CDK defines them
(infrastructure/lib/database-stack.ts, tables 8 and 10): user settings keyed by `tenant_id`; notifications keyed by
`notification_id`, with `gsi_tenant_created` (tenant_id / created_at), which the seed's `GET /admin/notifications`
queries, and `gsi_tenant_read` (tenant_id / read_at). Keys and index keys are strings."""

from botocore.exceptions import ClientError

from imageflow_dagster.flow.prompt_overrides import PLANNER_KEY
from imageflow_dagster.resources.dynamodb import DynamoDBResource

NOTIFICATION_INDEXES = (("gsi_tenant_created", "tenant_id", "created_at"), ("gsi_tenant_read", "tenant_id", "read_at"))


def create_notifications_table(db: DynamoDBResource) -> str:
    _create(db, db.notifications_table, "notification_id", NOTIFICATION_INDEXES)
    return db.notifications_table


def create_user_settings_table(db: DynamoDBResource) -> str:
    _create(db, db.user_settings_table, "tenant_id")
    return db.user_settings_table


def set_planner_override(db: DynamoDBResource, tenant_id: str, override: dict) -> None:
    """The tenant's settings row as the seed's settings page leaves it, with a planner override."""
    row = {"tenant_id": tenant_id, "prompt_overrides": {PLANNER_KEY: override}, "webhook_token": "secret-token"}
    db.put_item(db.user_settings_table, row)


def _create(db: DynamoDBResource, name: str, key: str, indexes: tuple[tuple[str, str, str], ...] = ()) -> None:
    attributes = {key, *(a for _, pk, sk in indexes for a in (pk, sk))}
    spec = {
        "TableName": name,
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index,
                "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, pk, sk in indexes
        ]
    try:
        db.get_client().create_table(**spec)
    except ClientError as exc:  # bootstrap may come to create the seed's tables itself
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
