"""Create the seed's tables and bucket (idempotently), plus the jobs status index imageflow's sensor queries."""

import json
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from imageflow_dagster.resources.aws import make_client
from imageflow_dagster.settings import Settings

PUBLIC_IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "gif", "webp", "svg")


@dataclass
class TableSpec:
    name: str
    key: str
    indexes: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (hash, range)


def table_specs(settings: Settings) -> list[TableSpec]:
    t = settings.tables
    return [
        TableSpec(
            t.jobs,
            "job_id",
            {
                "gsi_workflow_status": ("workflow_id", "status"),
                "gsi_tenant_created": ("tenant_id", "created_at"),
                settings.jobs_status_index: ("status", "created_at"),
            },
        ),
        TableSpec(t.workflows, "workflow_id", {"gsi_tenant_status": ("tenant_id", "status"), "gsi_form_id": ("form_id", None)}),
        TableSpec(t.forms, "form_id", {"gsi_tenant_id": ("tenant_id", None)}),
        TableSpec(t.submissions, "submission_id", {"gsi_tenant_created": ("tenant_id", "created_at")}),
        TableSpec(t.artifacts, "artifact_id", {"gsi_job_id": ("job_id", None), "gsi_tenant_type": ("tenant_id", "artifact_type")}),
        TableSpec(
            t.usage_records,
            "usage_id",
            # gsi_job_id is imageflow's own (the seed has none): a job's cost over all its runs.
            {"gsi_tenant_date": ("tenant_id", "created_at"), "gsi_job_id": ("job_id", None)},
        ),
        # imageflow's own: the account-wide OpenAI rate budgets (resources/rate_budget.py)
        TableSpec(settings.rate_limits_table, "budget"),
    ]


def bootstrap(settings: Settings, public_images: bool | None = None) -> list[str]:
    """Create what is missing and return what was done. Public image reads are granted by bucket policy (as
    the seed's CDK does) when `public_images`, which defaults to "running against an emulator"."""
    dynamodb = make_client("dynamodb", region_name=settings.region)
    s3 = make_client("s3", region_name=settings.region)
    done = [_ensure_table(dynamodb, spec) for spec in table_specs(settings)]
    done.append(_ensure_bucket(s3, settings))
    if public_images if public_images is not None else bool(settings.aws_endpoint_url):
        _allow_public_images(s3, settings.bucket)
        done.append(f"bucket {settings.bucket}: public read for images")
    return done


def _ensure_table(client, spec: TableSpec) -> str:
    try:
        existing = client.describe_table(TableName=spec.name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        client.create_table(**_create_args(spec))
        client.get_waiter("table_exists").wait(TableName=spec.name)
        return f"table {spec.name}: created"
    have = {i["IndexName"] for i in existing.get("GlobalSecondaryIndexes", [])}
    missing = [name for name in spec.indexes if name not in have]
    for name in missing:  # DynamoDB adds one GSI per UpdateTable call
        hash_key, range_key = spec.indexes[name]
        client.update_table(
            TableName=spec.name,
            AttributeDefinitions=_attributes(spec.key, [(hash_key, range_key)]),
            GlobalSecondaryIndexUpdates=[{"Create": _index(name, hash_key, range_key)}],
        )
    return f"table {spec.name}: " + (f"added {', '.join(missing)}" if missing else "exists")


def _create_args(spec: TableSpec) -> dict:
    args = {
        "TableName": spec.name,
        "KeySchema": [{"AttributeName": spec.key, "KeyType": "HASH"}],
        "AttributeDefinitions": _attributes(spec.key, list(spec.indexes.values())),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        args["GlobalSecondaryIndexes"] = [_index(n, h, r) for n, (h, r) in spec.indexes.items()]
    return args


def _attributes(key: str, index_keys: list[tuple[str, str | None]]) -> list[dict]:
    names = [key] + [k for pair in index_keys for k in pair if k]
    return [{"AttributeName": n, "AttributeType": "S"} for n in dict.fromkeys(names)]


def _index(name: str, hash_key: str, range_key: str | None) -> dict:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return {"IndexName": name, "KeySchema": schema, "Projection": {"ProjectionType": "ALL"}}


def _ensure_bucket(client, settings: Settings) -> str:
    try:
        client.head_bucket(Bucket=settings.bucket)
        return f"bucket {settings.bucket}: exists"
    except ClientError:
        pass
    args: dict = {"Bucket": settings.bucket}
    if settings.region != "us-east-1":
        args["CreateBucketConfiguration"] = {"LocationConstraint": settings.region}
    client.create_bucket(**args)
    return f"bucket {settings.bucket}: created"


def _allow_public_images(client, bucket: str) -> None:
    statements = [
        {
            "Sid": f"PublicRead{suffix.upper()}",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*.{suffix}",
        }
        for suffix in PUBLIC_IMAGE_SUFFIXES
    ]
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))
