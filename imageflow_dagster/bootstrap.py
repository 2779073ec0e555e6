"""Create the seed's tables and bucket (idempotently), plus the jobs status index imageflow's sensor queries.

The bucket policy is written only when asked (`public_images`): a deployed bucket's policy holds statements
of its own (SSL only, CloudFront's access) that a rewrite would lose, so our one statement is merged into it.
"""

import json
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from imageflow_dagster.resources.aws import make_client
from imageflow_dagster.settings import Settings

PUBLIC_IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "gif", "webp", "svg")
PUBLIC_READ_SID = "ImageflowPublicReadImages"


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


def bootstrap(settings: Settings, public_images: bool = False) -> list[str]:
    """Create what is missing and return what was done. With `public_images` (the local stack, whose image
    URLs point at the emulator), anyone may read image files, as the seed's CDK grants; the bucket policy is
    left alone otherwise, and the returned line says what the flag would add."""
    dynamodb = make_client("dynamodb", region_name=settings.region)
    s3 = make_client("s3", region_name=settings.region)
    done = [_ensure_table(dynamodb, spec) for spec in table_specs(settings)]
    done.append(_ensure_bucket(s3, settings))
    policy_step = _ensure_public_images if public_images else _public_images_unasked
    done.append(policy_step(s3, settings.bucket))
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


def public_read_statement(bucket: str) -> dict:
    """The one statement `public_images` adds: anyone may GET image files, nothing else."""
    resources = [f"arn:aws:s3:::{bucket}/*.{suffix}" for suffix in PUBLIC_IMAGE_SUFFIXES]
    return {
        "Sid": PUBLIC_READ_SID,
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": resources,
    }


def _ensure_public_images(client, bucket: str) -> str:
    """Adds our statement to the bucket policy, keeping every other statement and the document's fields."""
    policy = _bucket_policy(client, bucket)
    ours = public_read_statement(bucket)
    statements = _statements(policy)
    if ours in statements:
        return f"bucket {bucket}: bucket policy has public read for images already"
    kept = [statement for statement in statements if statement.get("Sid") != PUBLIC_READ_SID]  # an older ours
    document = {**(policy or {"Version": "2012-10-17"}), "Statement": [*kept, ours]}
    client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(document))
    return f"bucket {bucket}: bucket policy: added {_described(ours)}, kept {len(kept)} other statement(s)"


def _public_images_unasked(client, bucket: str) -> str:
    """Reads the policy only to say what --public-images would change; an unreadable policy is no error."""
    try:
        policy = _bucket_policy(client, bucket)
    except ClientError as exc:
        return f"bucket {bucket}: bucket policy left as is (not read: {exc.response['Error']['Code']})"
    ours = public_read_statement(bucket)
    if ours in _statements(policy):
        return f"bucket {bucket}: bucket policy has public read for images already"
    state = "no bucket policy, none written" if policy is None else "bucket policy left as is"
    return f"bucket {bucket}: {state}; --public-images would add {_described(ours)}"


def _bucket_policy(client, bucket: str) -> dict | None:
    try:
        return json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchBucketPolicy":
            return None
        raise


def _statements(policy: dict | None) -> list[dict]:
    statements = (policy or {}).get("Statement", [])
    return statements if isinstance(statements, list) else [statements]  # a single statement may be an object


def _described(statement: dict) -> str:
    keys = ", ".join(resource.rpartition("/")[2] for resource in statement["Resource"])
    return f"public read (s3:GetObject for everyone) of {keys}"
