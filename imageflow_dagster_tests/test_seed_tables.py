"""`imageflow bootstrap --seed-tables` (moto): every table, key, index and TTL of the seed's CDK stack, as listed in
local/seed_tables.json; a table imageflow created earlier gets the indexes it lacks; a key that differs is an error.

The list itself is generated from the seed's CDK files by scripts/seed_tables_from_cdk.py; CI has no seed checkout,
so its provenance and well-known entries are checked here. With a clone of the seed,
`python scripts/seed_tables_from_cdk.py --git-dir CLONE --commit COMMIT --check imageflow_dagster/local/seed_tables.json`
proves the list is what the script makes of it (checked when the list was generated)."""

import dataclasses
from pathlib import Path

import boto3
import pytest

from imageflow_dagster import cli
from imageflow_dagster.bootstrap import seed_definitions, seed_table_name, table_specs
from imageflow_dagster.settings import Settings

REGION = "us-east-1"
SEED_COMMIT = "e146f5a43001f4b7d5a3496c45a2d2f6baa4648d"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dynamodb(settings: Settings):
    return boto3.client("dynamodb", region_name=REGION)


def entry(constant: str) -> dict:
    return next(table for table in seed_definitions()["tables"] if table["constant"] == constant)


def index_names(constant: str) -> set[str]:
    return {index["name"] for index in entry(constant)["indexes"]}


def key_schema(hash_key: dict, range_key: dict | None) -> list[dict]:
    schema = [{"AttributeName": hash_key["name"], "KeyType": "HASH"}]
    return schema + ([{"AttributeName": range_key["name"], "KeyType": "RANGE"}] if range_key else [])


def own_extra_indexes(settings: Settings, name: str) -> set[str]:
    """imageflow's own indexes on a table the seed also defines (the jobs status index, usage by job)."""
    own = {spec.name: set(spec.indexes) for spec in table_specs(settings)}
    return own.get(name, set())


def assert_matches_the_seed(dynamodb, settings: Settings, table: dict) -> None:
    name = seed_table_name(table, settings)
    described = dynamodb.describe_table(TableName=name)["Table"]
    assert described["KeySchema"] == key_schema(table["partition_key"], table["sort_key"]), name
    types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
    keys = [table["partition_key"], table["sort_key"]]
    keys += [k for index in table["indexes"] for k in (index["partition_key"], index["sort_key"])]
    assert {k["name"]: k["type"] for k in keys if k} == {k["name"]: types[k["name"]] for k in keys if k}, name
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: i for i in described.get("GlobalSecondaryIndexes", [])}
    assert set(indexes) == {i["name"] for i in table["indexes"]} | own_extra_indexes(settings, name), name
    for index in table["indexes"]:
        found = indexes[index["name"]]
        assert found["KeySchema"] == key_schema(index["partition_key"], index["sort_key"]), (name, index["name"])
        assert found["Projection"] == {"ProjectionType": "ALL"}
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if table["ttl_attribute"]:
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", table["ttl_attribute"]), name
    else:
        assert ttl["TimeToLiveStatus"] == "DISABLED", name


def drop_all_tables(dynamodb) -> None:
    for name in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=name)


# ---- the list: where it came from, and what it must hold
def test_the_list_names_its_source_in_the_seed():
    source = seed_definitions()["source"]
    assert source["repository"] == "https://github.com/grandcanyonsmith/lead-magnet-ai-platform"
    assert source["commit"] == SEED_COMMIT
    assert "infrastructure/lib/database-stack.ts" in source["files"]
    assert "infrastructure/lib/config/constants.ts" in source["files"]
    assert source["generated_by"] == "scripts/seed_tables_from_cdk.py"
    assert (ROOT / source["generated_by"]).exists()
    assert seed_definitions()["defaults"] == {"billing_mode": "PAY_PER_REQUEST", "projection": "ALL"}


def test_the_list_holds_the_seeds_well_known_tables():
    tables = seed_definitions()["tables"]
    assert len(tables) == 21  # TABLE_NAMES in constants.ts: 19 created by the stack, 2 only referenced
    assert len({t["name"] for t in tables}) == 21
    assert index_names("JOBS") == {"gsi_workflow_status", "gsi_tenant_created"}
    assert index_names("FORMS") == {"gsi_tenant_id", "gsi_public_slug", "gsi_workflow_id"}
    notifications = entry("NOTIFICATIONS")
    assert (notifications["name"], notifications["env"]) == ("leadmagnet-notifications", "NOTIFICATIONS_TABLE")
    assert notifications["partition_key"] == {"name": "notification_id", "type": "S"}
    assert notifications["ttl_attribute"] == "ttl"
    assert index_names("NOTIFICATIONS") == {"gsi_tenant_created", "gsi_tenant_read"}
    assert entry("WORKFLOW_VERSIONS")["sort_key"] == {"name": "version", "type": "N"}
    assert entry("SESSIONS")["ttl_attribute"] == "expires_at"
    assert entry("FOLDERS")["env"] is None  # legacy: defined, read by no code
    assert {t["constant"] for t in tables if "referenced_only" in t} == {"USAGE_RECORDS", "WEBHOOK_LOGS"}
    assert index_names("USAGE_RECORDS") == {"gsi_tenant_date"}


# ---- bootstrap --seed-tables against moto
def test_seed_tables_creates_every_table_index_key_and_ttl_of_the_seed(settings, dynamodb, capsys):
    drop_all_tables(dynamodb)
    assert cli.main(["bootstrap", "--seed-tables"]) == 0
    for table in seed_definitions()["tables"]:
        assert_matches_the_seed(dynamodb, settings, table)
    printed = capsys.readouterr().out
    assert "table leadmagnet-forms: created" in printed
    assert "table leadmagnet-notifications: created, ttl on ttl" in printed
    assert f"table {settings.rate_limits_table}: created" in printed  # imageflow's own table is still made


def test_tables_imageflow_created_get_the_seeds_missing_indexes(settings, dynamodb, capsys):
    # The settings fixture ran the plain bootstrap: the forms table has gsi_tenant_id only.
    forms = dynamodb.describe_table(TableName=settings.tables.forms)["Table"]
    assert {i["IndexName"] for i in forms["GlobalSecondaryIndexes"]} == {"gsi_tenant_id"}
    assert cli.main(["bootstrap", "--seed-tables"]) == 0
    assert f"table {settings.tables.forms}: added gsi_public_slug, gsi_workflow_id" in capsys.readouterr().out
    for table in seed_definitions()["tables"]:
        assert_matches_the_seed(dynamodb, settings, table)
    assert cli.main(["bootstrap", "--seed-tables"]) == 0  # again: nothing left to do
    assert f"table {settings.tables.forms}: exists\n" in capsys.readouterr().out


def test_names_follow_imageflows_settings_and_the_seeds_variables(settings, dynamodb, monkeypatch, capsys):
    monkeypatch.setenv("JOBS_TABLE", "acme-jobs")  # one of imageflow's: read through its settings
    monkeypatch.setenv("TEMPLATES_TABLE", "acme-templates")  # only the seed's API reads it
    assert Settings.from_env().tables.jobs == "acme-jobs"
    assert cli.main(["bootstrap", "--seed-tables"]) == 0
    jobs = dynamodb.describe_table(TableName="acme-jobs")["Table"]
    wanted = index_names("JOBS") | {settings.jobs_status_index}  # the seed's, and the status index imageflow queries
    assert {i["IndexName"] for i in jobs["GlobalSecondaryIndexes"]} == wanted
    assert_matches_the_seed(dynamodb, dataclasses.replace(settings, tables=Settings.from_env().tables), entry("TEMPLATES"))
    assert "table acme-templates: created" in capsys.readouterr().out


def test_an_existing_table_with_other_keys_is_reported_not_hidden(settings, dynamodb, capsys):
    dynamodb.create_table(  # the seed keys templates by (template_id, version)
        TableName="leadmagnet-templates",
        KeySchema=[{"AttributeName": "template_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "template_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert cli.main(["bootstrap", "--seed-tables"]) == 2
    captured = capsys.readouterr()
    assert "table leadmagnet-templates: key is (template_id), expected (template_id, version)" in captured.err
    assert_matches_the_seed(dynamodb, settings, entry("NOTIFICATIONS"))  # the rest was still done


def test_the_seeds_cors_rule_goes_only_on_a_bucket_without_rules(settings, s3_client, capsys):
    assert cli.main(["bootstrap", "--seed-tables"]) == 0
    assert s3_client.get_bucket_cors(Bucket=settings.bucket)["CORSRules"] == [
        {"AllowedMethods": ["GET", "HEAD", "PUT"], "AllowedOrigins": ["*"], "AllowedHeaders": ["*"], "MaxAgeSeconds": 3600}
    ]
    own = [{"AllowedMethods": ["GET"], "AllowedOrigins": ["https://app.example.com"]}]
    s3_client.put_bucket_cors(Bucket=settings.bucket, CORSConfiguration={"CORSRules": own})
    assert cli.main(["bootstrap", "--seed-tables"]) == 0
    assert s3_client.get_bucket_cors(Bucket=settings.bucket)["CORSRules"] == own
    assert f"bucket {settings.bucket}: CORS rules exist, left as is" in capsys.readouterr().out


def test_without_the_flag_only_imageflows_tables_are_made(settings, dynamodb):
    drop_all_tables(dynamodb)
    assert cli.main(["bootstrap"]) == 0
    assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(spec.name for spec in table_specs(settings))


def test_imageflow_dev_takes_the_flag_or_the_variable(monkeypatch):
    assert cli._parser().parse_args(["dev", "--seed-tables"]).seed_tables
    assert not cli._parser().parse_args(["dev"]).seed_tables
    monkeypatch.setenv("IMAGEFLOW_SEED_TABLES", "true")
    assert cli._parser().parse_args(["dev"]).seed_tables


def test_the_local_stack_creates_them_when_asked(local_stack):
    stack = local_stack(seed_tables=True)
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=stack.env["AWS_ENDPOINT_URL"])
    settings = Settings.from_env()
    for table in seed_definitions()["tables"]:
        assert_matches_the_seed(dynamodb, settings, table)
