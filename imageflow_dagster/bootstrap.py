"""Create the seed's tables and bucket (idempotently), plus the jobs status index imageflow's sensor queries.

By default only the tables imageflow reads and writes; with `seed_tables` every table the seed's CDK stack defines
(local/seed_tables.json, generated from it), so the seed's own API runs against the same emulator.

The bucket policy is written only when asked (`public_images`): a deployed bucket's policy holds statements
of its own (SSL only, CloudFront's access) that a rewrite would lose, so our one statement is merged into it.
"""

import json
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from botocore.exceptions import ClientError

from imageflow_dagster.resources.aws import make_client
from imageflow_dagster.settings import Settings, seed_variable

PUBLIC_IMAGE_SUFFIXES = ("png", "jpg", "jpeg", "gif", "webp", "svg")
PUBLIC_READ_SID = "ImageflowPublicReadImages"
SEED_TABLES_FILE = Path(__file__).parent / "local" / "seed_tables.json"
INDEX_WAIT_S = 900  # a new index on a large table backfills for minutes; the next one waits for it


class TableMismatch(Exception):
    """Existing tables whose keys differ from the definition: DynamoDB cannot change a table's or an index's keys
    in place, and the code reading them would fail later, less clearly."""

    def __init__(self, done: list[str], problems: list[str]):
        super().__init__("; ".join(problems))
        self.done, self.problems = done, problems


@dataclass
class TableSpec:
    name: str
    key: str
    indexes: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # name -> (hash, range)
    sort_key: str | None = None
    types: dict[str, str] = field(default_factory=dict)  # attribute -> "N" or "B"; every other one is "S"
    ttl: str | None = None


def table_specs(settings: Settings) -> list[TableSpec]:
    t = settings.tables
    return [
        TableSpec(
            t.jobs,
            "job_id",
            {
                "gsi_workflow_status": ("workflow_id", "status"),
                "gsi_tenant_created": ("tenant_id", "created_at"),
                # an empty name: this deployment's jobs table has no status index (the sensor scans)
                **({settings.jobs_status_index: ("status", "created_at")} if settings.jobs_status_index else {}),
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
        # The seed's tables imageflow reads (a tenant's planner override) and writes (the UI bell's notification),
        # as the seed defines them
        *(_seed_spec(_seed_entry(constant), name) for constant, name in
          (("USER_SETTINGS", t.user_settings), ("NOTIFICATIONS", t.notifications))),
    ]


def _seed_entry(constant: str) -> dict:
    return next(entry for entry in seed_definitions()["tables"] if entry["constant"] == constant)


@cache
def seed_definitions() -> dict:
    return json.loads(SEED_TABLES_FILE.read_text())


def seed_table_name(entry: dict, settings: Settings) -> str:
    """imageflow's own tables go by its settings (a seed table it also reads must be the very same table); the
    others by the seed's variable (the seed's API reads the same one), else the seed's default name."""
    own = getattr(settings.tables, entry["constant"].lower(), None)
    return own or (seed_variable(entry["env"]) if entry["env"] else None) or entry["name"]


def seed_table_specs(settings: Settings) -> list[TableSpec]:
    """Every table the seed defines, imageflow's extra indexes kept on its own tables; then imageflow's tables
    the seed has not (the rate budgets)."""
    own = {spec.name: spec for spec in table_specs(settings)}
    specs = []
    for entry in seed_definitions()["tables"]:
        spec = _seed_spec(entry, seed_table_name(entry, settings))
        extra = own.pop(spec.name, TableSpec(spec.name, spec.key)).indexes
        spec.indexes.update({name: keys for name, keys in extra.items() if name not in spec.indexes})
        specs.append(spec)
    return specs + list(own.values())


def _seed_spec(entry: dict, name: str) -> TableSpec:
    keys = [entry["partition_key"], entry["sort_key"]]
    keys += [k for index in entry["indexes"] for k in (index["partition_key"], index["sort_key"])]
    return TableSpec(
        name,
        entry["partition_key"]["name"],
        {i["name"]: (i["partition_key"]["name"], (i["sort_key"] or {}).get("name")) for i in entry["indexes"]},
        sort_key=(entry["sort_key"] or {}).get("name"),
        types={k["name"]: k["type"] for k in keys if k and k["type"] != "S"},
        ttl=entry["ttl_attribute"],
    )


def bootstrap(settings: Settings, public_images: bool = False, seed_tables: bool = False) -> list[str]:
    """Create what is missing and return what was done. With `public_images` (the local stack, whose image
    URLs point at the emulator), anyone may read image files, as the seed's CDK grants; the bucket policy is
    left alone otherwise, and the returned line says what the flag would add. With `seed_tables`, every table
    of the seed's and the seed's CORS rule on a bucket that has none. Raises TableMismatch (after doing the rest)
    when an existing table's keys differ from the definition."""
    dynamodb = make_client("dynamodb", region_name=settings.region)
    s3 = make_client("s3", region_name=settings.region)
    specs = seed_table_specs(settings) if seed_tables else table_specs(settings)
    done, problems = [], []
    for spec in specs:
        line, mismatch = _ensure_table(dynamodb, spec)
        done.append(line)
        problems += mismatch
    done.append(_ensure_bucket(s3, settings))
    policy_step = _ensure_public_images if public_images else _public_images_unasked
    done.append(policy_step(s3, settings.bucket))
    if seed_tables:
        done.append(_ensure_cors(s3, settings.bucket))
    if problems:
        raise TableMismatch(done, problems)
    return done


def _ensure_table(client, spec: TableSpec) -> tuple[str, list[str]]:
    """(what was done, how the existing table's keys differ from `spec`)."""
    try:
        existing = client.describe_table(TableName=spec.name)["Table"]
    except client.exceptions.ResourceNotFoundException:
        client.create_table(**_create_args(spec))
        client.get_waiter("table_exists").wait(TableName=spec.name)
        return f"table {spec.name}: created" + _ensure_ttl(client, spec), []
    have = {i["IndexName"]: i["KeySchema"] for i in existing.get("GlobalSecondaryIndexes", [])}
    problems = _key_differences(spec, existing["KeySchema"], have)
    missing = [name for name in spec.indexes if name not in have]
    # The table's definitions are passed along: DynamoDB merges them with the new index's, moto replaces them.
    defined = {a["AttributeName"]: a for a in existing["AttributeDefinitions"]}
    for name in missing:  # DynamoDB adds one GSI per UpdateTable call, and one at a time
        _wait_active(client, spec.name)
        hash_key, range_key = spec.indexes[name]
        defined.update({a["AttributeName"]: a for a in _attributes(spec, [hash_key, range_key])})
        client.update_table(
            TableName=spec.name,
            AttributeDefinitions=list(defined.values()),
            GlobalSecondaryIndexUpdates=[{"Create": _index(name, hash_key, range_key)}],
        )
    line = f"table {spec.name}: " + (f"added {', '.join(missing)}" if missing else "exists")
    return line + _ensure_ttl(client, spec), problems


def _key_differences(spec: TableSpec, key_schema: list[dict], indexes: dict[str, list[dict]]) -> list[str]:
    wanted = {None: _key_schema(spec.key, spec.sort_key)} | {n: _key_schema(*keys) for n, keys in spec.indexes.items()}
    found = {None: key_schema} | indexes
    return [
        f"table {spec.name}: {f'index {name}' if name else 'key'} is {_keys(found[name])}, expected {_keys(schema)}"
        for name, schema in wanted.items()
        if name in found and found[name] != schema
    ]


def _keys(schema: list[dict]) -> str:
    return "(" + ", ".join(k["AttributeName"] for k in schema) + ")"


def _wait_active(client, name: str) -> None:
    """Until the table and its indexes are ACTIVE: DynamoDB refuses a second index while one is being built."""
    deadline = time.monotonic() + INDEX_WAIT_S
    while time.monotonic() < deadline:
        table = client.describe_table(TableName=name)["Table"]
        statuses = [table["TableStatus"], *(i["IndexStatus"] for i in table.get("GlobalSecondaryIndexes", []))]
        if all(status == "ACTIVE" for status in statuses):
            return
        time.sleep(5)
    raise TimeoutError(f"table {name} not ACTIVE after {INDEX_WAIT_S} s")


def _ensure_ttl(client, spec: TableSpec) -> str:
    if not spec.ttl:
        return ""
    described = client.describe_time_to_live(TableName=spec.name)["TimeToLiveDescription"]
    if described.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return ""
    client.update_time_to_live(
        TableName=spec.name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl}
    )
    return f", ttl on {spec.ttl}"


def _create_args(spec: TableSpec) -> dict:
    index_keys = [k for pair in spec.indexes.values() for k in pair]
    args = {
        "TableName": spec.name,
        "KeySchema": _key_schema(spec.key, spec.sort_key),
        "AttributeDefinitions": _attributes(spec, [spec.key, spec.sort_key, *index_keys]),
        "BillingMode": "PAY_PER_REQUEST",
    }
    if spec.indexes:
        args["GlobalSecondaryIndexes"] = [_index(name, *keys) for name, keys in spec.indexes.items()]
    return args


def _attributes(spec: TableSpec, names: list[str | None]) -> list[dict]:
    return [{"AttributeName": n, "AttributeType": spec.types.get(n, "S")} for n in dict.fromkeys(names) if n]


def _key_schema(hash_key: str, range_key: str | None) -> list[dict]:
    schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
    if range_key:
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    return schema


def _index(name: str, hash_key: str, range_key: str | None) -> dict:
    return {"IndexName": name, "KeySchema": _key_schema(hash_key, range_key), "Projection": {"ProjectionType": "ALL"}}


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


def _ensure_cors(client, bucket: str) -> str:
    """The seed's CORS rule (the browser reads and uploads files directly), on a bucket that has no rules yet;
    rules a deployment set are its own and stay."""
    try:
        client.get_bucket_cors(Bucket=bucket)
        return f"bucket {bucket}: CORS rules exist, left as is"
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchCORSConfiguration":
            raise
    client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": seed_definitions()["bucket_cors"]})
    return f"bucket {bucket}: CORS: added the seed's rule"


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
