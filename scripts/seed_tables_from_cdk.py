"""Regenerate imageflow_dagster/local/seed_tables.json from the seed's CDK definitions.

The seed (github.com/grandcanyonsmith/lead-magnet-ai-platform) defines its DynamoDB tables in
infrastructure/lib/database-stack.ts through two helpers (utils/dynamodb-helpers.ts), with names from
config/constants.ts. This reads those files from a checkout (--repo) or from a bare clone at a commit
(--git-dir, --commit) and writes the list `imageflow bootstrap --seed-tables` creates. The tests cannot run this
(CI has no seed checkout), so they check the JSON it wrote; rerun it when the seed moves:

    python scripts/seed_tables_from_cdk.py --git-dir /path/to/seed.git --commit e146f5a4 \\
        --out imageflow_dagster/local/seed_tables.json     # or --check to compare with the file

Two tables the stack only references (`Table.fromTableName`, created outside CDK) have no key schema there; their
keys and indexes come from the seed's code that reads them, listed in REFERENCED_ONLY with the lines that show it.
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = "https://github.com/grandcanyonsmith/lead-magnet-ai-platform"
STACK = "infrastructure/lib/database-stack.ts"
CONSTANTS = "infrastructure/lib/config/constants.ts"
HELPERS = "infrastructure/lib/utils/dynamodb-helpers.ts"
TYPES = "infrastructure/lib/types.ts"
STORAGE = "infrastructure/lib/storage-stack.ts"  # the artifacts bucket's CORS rule
TYPE_CODES = {"STRING": "S", "NUMBER": "N", "BINARY": "B"}

_DEFINITION = re.compile(r"const \w+ = (createTableWithGSI|createTable|dynamodb\.Table\.fromTableName)\(\s*this,\s*'(\w+)'")
_KEY = r"{kind}: {{ name: '(\w+)', type: dynamodb\.AttributeType\.(\w+) }}"
_CONSTANT = re.compile(r"^\s+(\w+): '([^']+)',?$", re.MULTILINE)

# Keys and indexes of the referenced-only tables, from the code that reads and writes them (same commit).
REFERENCED_ONLY = {
    "USAGE_RECORDS": {
        "partition_key": {"name": "usage_id", "type": "S"},
        "indexes": [("gsi_tenant_date", "tenant_id", "created_at")],
        "evidence": [
            "backend/api/src/controllers/billing.ts: db.query(USAGE_RECORDS_TABLE, 'gsi_tenant_date', "
            "'tenant_id = :tenant_id AND created_at BETWEEN ...')",
            "backend/worker/services/usage_service.py: usage_id = f'usage_{new_ulid()}' (the item's key)",
        ],
    },
    "WEBHOOK_LOGS": {
        "partition_key": {"name": "log_id", "type": "S"},
        "indexes": [("gsi_tenant_created", "tenant_id", "created_at")],
        "evidence": [
            "backend/api/src/controllers/webhookLogs.ts: db.query(WEBHOOK_LOGS_TABLE, 'gsi_tenant_created', "
            "'tenant_id = :tenant_id'); db.get(WEBHOOK_LOGS_TABLE, { log_id })",
        ],
    },
}


def read_files(args: argparse.Namespace) -> dict[str, str]:
    paths = (STACK, CONSTANTS, HELPERS, TYPES, STORAGE)
    if args.repo:
        return {path: (Path(args.repo) / path).read_text() for path in paths}
    show = lambda path: subprocess.run(  # noqa: E731
        ["git", "--git-dir", args.git_dir, "show", f"{args.commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    return {path: show(path) for path in paths}


def resolved_commit(args: argparse.Namespace) -> str:
    where = ["--git-dir", args.git_dir] if args.git_dir else ["-C", args.repo]
    out = subprocess.run(["git", *where, "rev-parse", args.commit], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else args.commit


def constants_block(text: str, name: str) -> dict[str, str]:
    """`export const NAME = { KEY: 'value', ... }` as a dict."""
    start = text.index(f"export const {name}")
    return dict(_CONSTANT.findall(text[start : text.index("}", start)]))


def helper_defaults(helpers: str) -> dict[str, str]:
    """What every table and index gets from the helpers; checked, so a change in the seed is not missed."""
    expected = ("dynamodb.BillingMode.PAY_PER_REQUEST", "gsi.projectionType || dynamodb.ProjectionType.ALL")
    missing = [snippet for snippet in expected if snippet not in helpers]
    if missing:
        raise SystemExit(f"{HELPERS} changed: {missing} not found; update this script")
    return {"billing_mode": "PAY_PER_REQUEST", "projection": "ALL"}


def parse_key(text: str, kind: str) -> dict | None:
    match = re.search(_KEY.format(kind=kind), text)
    return {"name": match.group(1), "type": TYPE_CODES[match.group(2)]} if match else None


def parse_index(text: str) -> dict:
    if "projectionType" in text:
        raise SystemExit(f"{STACK}: an index sets its own projectionType; update this script")
    return {
        "name": re.search(r"indexName: '(\w+)'", text).group(1),
        "partition_key": parse_key(text, "partitionKey"),
        "sort_key": parse_key(text, "sortKey"),
    }


def parse_definition(helper: str, construct: str, body: str) -> dict:
    """One table from the text of its definition (from its `const` to the next one)."""
    constant = re.search(r"TABLE_NAMES\.(\w+)", body).group(1)
    table = {"constant": constant, "construct": construct}
    if helper.endswith("fromTableName"):
        return {**table, **referenced_only(constant)}
    props, _, gsis = body.partition("[")
    ttl = re.search(r"timeToLiveAttribute: '(\w+)'", props)
    indexes = [parse_index("indexName:" + chunk) for chunk in gsis.split("indexName:")[1:]]
    return {
        **table,
        "partition_key": parse_key(props, "partitionKey"),
        "sort_key": parse_key(props, "sortKey"),
        "ttl_attribute": ttl.group(1) if ttl else None,
        "indexes": indexes,
    }


def referenced_only(constant: str) -> dict:
    known = REFERENCED_ONLY.get(constant)
    if known is None:
        raise SystemExit(f"{STACK}: {constant} is only referenced and has no entry in REFERENCED_ONLY")
    indexes = [
        {"name": name, "partition_key": {"name": pk, "type": "S"}, "sort_key": {"name": sk, "type": "S"} if sk else None}
        for name, pk, sk in known["indexes"]
    ]
    return {
        "partition_key": known["partition_key"],
        "sort_key": None,
        "ttl_attribute": None,
        "indexes": indexes,
        "referenced_only": {"why": "Table.fromTableName: created outside CDK", "evidence": known["evidence"]},
    }


def bucket_cors(storage: str) -> list[dict]:
    """The artifacts bucket's one CORS rule (`cors: [{ allowedMethods, allowedOrigins, allowedHeaders, maxAge }]`)."""
    block = storage[storage.index("cors: [") : storage.index("],\n      lifecycleRules")]
    if block.count("allowedMethods") != 1:
        raise SystemExit(f"{STORAGE}: expected one CORS rule; update this script")
    quoted = lambda field: re.findall(r"'([^']*)'", re.search(field + r": \[([^\]]*)\]", block).group(1))  # noqa: E731
    return [{
        "AllowedMethods": re.findall(r"s3\.HttpMethods\.(\w+)", block),
        "AllowedOrigins": quoted("allowedOrigins"),
        "AllowedHeaders": quoted("allowedHeaders"),
        "MaxAgeSeconds": int(re.search(r"maxAge: (\d+)", block).group(1)),
    }]


def seed_tables(files: dict[str, str], commit: str) -> dict:
    stack = files[STACK][: files[STACK].index("// Explicitly create exports")]
    names = constants_block(files[CONSTANTS], "TABLE_NAMES")
    env_vars = constants_block(files[CONSTANTS], "TABLE_ENV_VAR_MAP")  # camelCase TableKey -> env var
    table_keys = dict(re.findall(r"^\s+(\w+) = '(\w+)',", files[TYPES], re.MULTILINE))  # CONSTANT -> camelCase
    matches = list(_DEFINITION.finditer(stack))
    tables = []
    for match, following in zip(matches, [*matches[1:], None]):
        table = parse_definition(match.group(1), match.group(2), stack[match.end() : following.start() if following else None])
        constant = table["constant"]
        env_var = env_vars.get(table_keys.get(constant, ""))  # FOLDERS (legacy) has none
        tables.append({"constant": constant, "name": names[constant], "env": env_var, **table})
    return {
        "about": "The seed's DynamoDB tables as its CDK stack defines them; `imageflow bootstrap --seed-tables` "
        "creates them. Generated, do not edit: rerun the script named below against the seed.",
        "source": {
            "repository": REPOSITORY,
            "commit": commit,
            "files": [STACK, CONSTANTS, HELPERS, TYPES, STORAGE],
            "generated_by": "scripts/seed_tables_from_cdk.py",
        },
        "defaults": helper_defaults(files[HELPERS]),
        "tables": tables,
        "bucket_cors": bucket_cors(files[STORAGE]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--repo", help="a checkout of the seed (its work tree)")
    where.add_argument("--git-dir", help="a (bare) clone of the seed; files are read at --commit")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--out", type=Path, help="write here (default: stdout)")
    parser.add_argument("--check", type=Path, help="exit 1 if this file differs from what would be written")
    args = parser.parse_args(argv)
    text = json.dumps(seed_tables(read_files(args), resolved_commit(args)), indent=2) + "\n"
    if args.check:
        same = args.check.read_text() == text
        print(f"{args.check}: {'up to date' if same else 'differs from the seed definitions'}")
        return 0 if same else 1
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
