"""`imageflow bootstrap`, `submit`, `status` and `spend`: the tables, the bucket and the jobs in them."""

import argparse
import json
from importlib import resources
from pathlib import Path

from imageflow_dagster.bootstrap import TableMismatch, bootstrap
from imageflow_dagster.cli.errors import CliError
from imageflow_dagster.flow.job_store import job_usage_rows, usage_cost_usd
from imageflow_dagster.flow.records import EXECUTION_STEPS_FILE
from imageflow_dagster.flow.spend import parse_day, period_spend, read_usage, report_lines, spend_by_day, utc_today
from imageflow_dagster.resources import build_resources
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job


def bootstrap_tables(args: argparse.Namespace) -> int:
    try:
        done = bootstrap(Settings.from_env(), public_images=args.public_images, seed_tables=args.seed_tables)
    except TableMismatch as exc:
        print("\n".join(exc.done))
        raise CliError(f"existing tables differ from the definition: {exc}") from None
    print("\n".join(done))
    return 0


def submit(args: argparse.Namespace) -> int:
    db = resources_from_env()["dynamodb"]
    workflow, fields, answers = demo_job() if args.demo else (_read_json(args.workflow), None, {})
    fields = workflow.pop("form_fields", None) or fields
    if args.answers:
        answers.update(_read_json(args.answers))
    for pair in args.answer:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"--answer expects KEY=VALUE, got {pair!r}")
        answers[key] = value
    if not isinstance(workflow.get("steps"), list) or not workflow["steps"]:
        raise CliError("the workflow file needs a non-empty `steps` list (seed format)")
    job = submit_job(db, workflow=workflow, answers=answers, tenant_id=args.tenant, form_fields=fields)
    print(job.job_id)
    return 0


def status(args: argparse.Namespace) -> int:
    built = resources_from_env()
    report = job_report(built["dynamodb"], built["s3"], args.job_id)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"job {report['job_id']}: {report['status']}")
    for label in ("live_step", "error_message"):
        if report.get(label):
            print(f"  {label.replace('_', ' ')}: {report[label]}")
    print(f"  cost: ${report['cost_usd']:.4f} ({report['usage_records']} usage record(s))")
    for url in report["image_urls"]:
        print(f"  image: {url}")
    return 0


def job_report(db: DynamoDBResource, s3: ImageflowS3Resource, job_id: str) -> dict:
    row = db.get_item(db.jobs_table, {"job_id": job_id})
    if row is None:
        raise CliError(f"job {job_id} not found in table {db.jobs_table}")
    usage = job_usage_rows(db, job_id)
    live = (row.get("live_step") or {}).get("output_text", "")
    return {
        "job_id": job_id,
        "status": row.get("status"),
        "live_step": live.splitlines()[-1] if live else "",
        "error_message": row.get("error_message", ""),
        "image_urls": _image_urls(s3, row),
        "cost_usd": round(usage_cost_usd(usage), 6),
        "usage_records": len(usage),
    }


def _image_urls(s3: ImageflowS3Resource, row: dict) -> list[str]:
    key = row.get("execution_steps_s3_key") or f"{row.get('tenant_id')}/jobs/{row['job_id']}/{EXECUTION_STEPS_FILE}"
    raw = s3.get_bytes(key)
    if not raw:
        return []
    return [url for step in json.loads(raw) for url in step.get("image_urls") or []]


def spend(args: argparse.Namespace) -> int:
    since, until = _day(args.since), utc_today()
    if since > until:
        raise CliError(f"--since {since} is after today ({until}, UTC)")
    rows = read_usage(resources_from_env()["dynamodb"], since, until, tenant=args.tenant)
    days = spend_by_day(rows)
    period = period_spend(days, f"total {since}..{until}" + (f", tenant {args.tenant}" if args.tenant else ""))
    if args.json:
        report = {"since": since, "until": until, "tenant": args.tenant}
        print(json.dumps({**report, "days": [d.as_dict() for d in days], "total": period.as_dict()}, indent=2))
    else:
        print("\n".join(report_lines(days, period)))
    return 0


def _day(text: str) -> str:
    # Checked here, not by an argparse type: the parser stays on the standard library (see cli/__init__.py).
    try:
        return parse_day(text)
    except ValueError:
        raise CliError(f"--since expects a date as YYYY-MM-DD, got {text!r}") from None


# ---- shared with `imageflow dev`
def resources_from_env() -> dict:
    return build_resources(Settings.from_env())


def demo_job() -> tuple[dict, list, dict]:
    """The demo workflow, its form fields and answers."""
    folder = resources.files("imageflow_dagster").joinpath("demo")
    form = json.loads(folder.joinpath("form.json").read_text())
    return json.loads(folder.joinpath("workflow.json").read_text()), form["fields"], dict(form["answers"])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CliError(f"file not found: {path}") from exc
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}") from exc
