"""`imageflow`: run the flow locally, create tables, submit jobs and read their status."""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from importlib import resources
from pathlib import Path

import botocore.exceptions

from imageflow_dagster.bootstrap import TableMismatch, bootstrap
from imageflow_dagster.flow.job_store import job_usage_rows
from imageflow_dagster.flow.records import EXECUTION_STEPS_FILE
from imageflow_dagster.observability.logs import configure_process_logging
from imageflow_dagster.flow.spend import (
    parse_day,
    period_spend,
    read_usage,
    report_lines,
    spend_by_day,
    utc_today,
)
from imageflow_dagster.resources import build_resources
from imageflow_dagster.resources.dynamodb import DynamoDBResource, TableError
from imageflow_dagster.resources.s3 import ImageflowS3Resource, StorageError
from imageflow_dagster.settings import Settings
from imageflow_dagster.submit import submit_job

if sys.version_info >= (3, 11):
    import tomllib
else:  # 3.10: the same parser from PyPI (setup.py declares tomli there)
    import tomli as tomllib

ENDED = ("completed", "failed")
PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the source tree (pyproject.toml with [tool.dg])
SEED_TABLES_HELP = (
    "also create every table and index the seed's infrastructure defines, and its bucket CORS rule, so the seed's "
    "own API (backend/api/server-local.js) runs against the same tables"
)


class CliError(Exception):
    """An expected problem, shown as one line on stderr with exit code 2."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_process_logging()  # IMAGEFLOW_LOG_FORMAT=json: library (boto, Celery) logs as JSON lines
    try:
        return args.run(args)
    except CliError as exc:
        print(f"imageflow: {exc}", file=sys.stderr)
        return 2
    except (TableError, StorageError) as exc:
        print(f"imageflow: {exc} (run `imageflow bootstrap` to create tables and bucket)", file=sys.stderr)
        return 2
    except botocore.exceptions.EndpointConnectionError as exc:
        print(f"imageflow: cannot reach AWS at {exc.kwargs.get('endpoint_url')}: connection refused", file=sys.stderr)
        return 2
    except botocore.exceptions.NoCredentialsError:
        print("imageflow: no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imageflow", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole flow on the embedded local stack with the Dagster UI")
    dev.add_argument("--no-demo", action="store_true", help="start without submitting the demo job")
    dev.add_argument("--port", type=int, default=None, help="Dagster UI port (default: 3000 or a free one)")
    dev.add_argument("--home", default=None, help="local data directory (default: $IMAGEFLOW_HOME or ./.imageflow)")
    dev.add_argument("--timeout", type=float, default=600, help="seconds to wait for the demo job")
    dev.add_argument(
        "--seed-tables", action="store_true", default=_env_flag("IMAGEFLOW_SEED_TABLES"),
        help=SEED_TABLES_HELP + " (default: $IMAGEFLOW_SEED_TABLES)",
    )
    real = dev.add_argument_group("the local OpenAI server, playing the real one")
    real.add_argument("--image-latency", type=float, default=0.0, help="seconds each image takes")
    real.add_argument("--images-per-minute", type=float, default=0.0, help="enforce OpenAI's 429 at this rate (0: off)")
    real.add_argument("--shut-down-models", default="", help="models answered 404 model_not_found (comma-separated)")
    real.add_argument("--quota-exhausted", action="store_true", help="answer every call 429 insufficient_quota")
    dev.set_defaults(run=_dev)

    boot = commands.add_parser("bootstrap", help="create the tables and the bucket if missing (idempotent)")
    boot.add_argument(
        "--public-images",
        action="store_true",
        help="let anyone read image files (*.png, *.jpg, ...): one statement added to the bucket policy, its other "
        "statements kept (for a local emulator; without it the policy is left as is)",
    )
    boot.add_argument("--seed-tables", action="store_true", help=SEED_TABLES_HELP)
    boot.set_defaults(run=_bootstrap)

    submit = commands.add_parser("submit", help="submit a job like the seed's API does; prints the job id")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--workflow", type=Path, help="seed-format workflow JSON file")
    source.add_argument("--demo", action="store_true", help="the demo workflow and answers")
    submit.add_argument("--answer", action="append", default=[], metavar="KEY=VALUE", help="a form answer (repeatable)")
    submit.add_argument("--answers", type=Path, help="JSON file of form answers")
    submit.add_argument("--tenant", default="tenant_demo", help="tenant id (default: tenant_demo)")
    submit.set_defaults(run=_submit)

    status = commands.add_parser("status", help="status, live progress, image URLs and cost of a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run=_status)

    spend = commands.add_parser("spend", help="OpenAI cost per UTC day, tenant and model, from the usage rows")
    spend.add_argument("--since", required=True, type=_day, metavar="DATE", help="first UTC day (YYYY-MM-DD)")
    spend.add_argument("--tenant", default=None, help="only this tenant (read from its tenant/date index)")
    spend.add_argument("--json", action="store_true", help="machine-readable output")
    spend.set_defaults(run=_spend)

    local = commands.add_parser("local-openai", help="run the local OpenAI-compatible server in the foreground")
    local.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        help="--host, --port, --image-latency, --response-latency, --images-per-minute, "
        "--rate-limit-algorithm {token_bucket,rolling_window}, --refused-calls-count, --rate-limit-per-model, "
        "--shut-down-models, --quota-exhausted",
    )
    local.set_defaults(run=_local_openai)

    worker = commands.add_parser("worker", help="a Celery run worker for deploy/dagster.yaml (needs the deploy extra)")
    worker.add_argument("--concurrency", type=int, default=2, help="runs executed at once (default: 2)")
    worker.add_argument("--queue", default="dagster", help="Celery queue to take runs from (default: dagster)")
    worker.add_argument("--name", default=None, help="worker name (default: imageflow-<random>@<host>)")
    worker.set_defaults(run=_worker)
    return parser


def _worker(args: argparse.Namespace) -> int:
    try:
        from imageflow_dagster.run_workers.celery_worker import WorkerConfigError, run_worker
    except ImportError as exc:
        raise CliError(f"{exc.name} is missing: install the deploy extra (pip install -e '.[deploy]')") from None
    try:
        return run_worker(args.concurrency, args.queue, args.name)
    except WorkerConfigError as exc:
        raise CliError(str(exc)) from None


def _local_openai(args: argparse.Namespace) -> int:
    from imageflow_dagster.local.openai_server import main as serve

    return serve(args.args)


# ---- bootstrap / submit / status
def _bootstrap(args: argparse.Namespace) -> int:
    try:
        done = bootstrap(Settings.from_env(), public_images=args.public_images, seed_tables=args.seed_tables)
    except TableMismatch as exc:
        print("\n".join(exc.done))
        raise CliError(f"existing tables differ from the definition: {exc}") from None
    print("\n".join(done))
    return 0


def _env_flag(name: str) -> bool:
    return os.getenv(name, "").strip().lower() in ("1", "true", "yes")


def _submit(args: argparse.Namespace) -> int:
    db = _resources()["dynamodb"]
    workflow, fields, answers = _demo() if args.demo else (_read_json(args.workflow), None, {})
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


def _status(args: argparse.Namespace) -> int:
    built = _resources()
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
        "cost_usd": round(sum(float(u.get("cost_usd", 0)) for u in usage), 6),
        "usage_records": len(usage),
    }


def _image_urls(s3: ImageflowS3Resource, row: dict) -> list[str]:
    key = row.get("execution_steps_s3_key") or f"{row.get('tenant_id')}/jobs/{row['job_id']}/{EXECUTION_STEPS_FILE}"
    raw = s3.get_bytes(key)
    if not raw:
        return []
    return [url for step in json.loads(raw) for url in step.get("image_urls") or []]


# ---- spend
def _spend(args: argparse.Namespace) -> int:
    until = utc_today()
    if args.since > until:
        raise CliError(f"--since {args.since} is after today ({until}, UTC)")
    rows = read_usage(_resources()["dynamodb"], args.since, until, tenant=args.tenant)
    days = spend_by_day(rows)
    period = period_spend(days, f"total {args.since}..{until}" + (f", tenant {args.tenant}" if args.tenant else ""))
    if args.json:
        report = {"since": args.since, "until": until, "tenant": args.tenant}
        print(json.dumps({**report, "days": [d.as_dict() for d in days], "total": period.as_dict()}, indent=2))
    else:
        print("\n".join(report_lines(days, period)))
    return 0


def _day(text: str) -> str:
    try:
        return parse_day(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


# ---- dev
def _dev(args: argparse.Namespace) -> int:
    from imageflow_dagster.local.extra import missing_local_extra

    missing = missing_local_extra()
    if missing:
        needs = "`imageflow dev` needs the local extra (pip install -e '.[local]')"
        raise CliError(f"{', '.join(missing)} missing: {needs}")
    from imageflow_dagster.local.stack import LocalStack, wait_for_http

    stack = LocalStack(
        args.home,
        image_latency_s=args.image_latency,
        images_per_minute=args.images_per_minute,
        shut_down_models=tuple(m.strip() for m in args.shut_down_models.split(",") if m.strip()),
        quota_exhausted=args.quota_exhausted,
        seed_tables=args.seed_tables,
    ).start()
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        ui_port = args.port or stack.ports["ui"]
        log_path = stack.home / "dagster-dev.log"
        print(f"local stack: moto {stack.env['AWS_ENDPOINT_URL']}, OpenAI {stack.env['OPENAI_BASE_URL']}, data {stack.home}")
        with open(log_path, "ab") as log:
            command = dg_dev_command(stack.home, ui_port)
            stack.spawn(command, stdout=log, stderr=subprocess.STDOUT, env=_active_venv())
        ui = f"http://127.0.0.1:{ui_port}"
        if not wait_for_http(f"{ui}/server_info", 180):
            raise CliError(f"the Dagster UI did not come up; see {log_path}")
        print(f"Dagster UI: {ui}   (logs: {log_path}; Ctrl-C stops everything)", flush=True)
        if not args.no_demo:
            _run_demo(stack, args.timeout, stopped)
        stopped.wait()
        print("stopping...", flush=True)
    finally:
        stack.stop()
    return 0


def _run_demo(stack, timeout_s: float, stopped: threading.Event) -> None:
    from imageflow_dagster.local.stack import _patched_environ

    with _patched_environ(stack.env):
        built = _resources()
        workflow, fields, answers = _demo()
        job = submit_job(built["dynamodb"], workflow=workflow, answers=answers, form_fields=fields)
        print(f"demo job submitted: {job.job_id} (the sensor picks it up within seconds)", flush=True)
        deadline = time.monotonic() + timeout_s
        while not stopped.is_set() and time.monotonic() < deadline:
            report = job_report(built["dynamodb"], built["s3"], job.job_id)
            if report["status"] in ENDED:
                print(f"demo job {job.job_id}: {report['status']} {report['error_message']}".rstrip())
                print(f"  cost: ${report['cost_usd']:.4f}")
                for url in report["image_urls"]:
                    print(f"  image: {url}")
                return
            stopped.wait(2)
        print(f"demo job {job.job_id} has not finished yet; see the Dagster UI", flush=True)


def dg_dev_command(home: Path, port: int) -> list[str]:
    """`dg dev` (dagster-dg-cli: webserver + daemon) on 127.0.0.1:`port`. From the source tree it loads the
    project that pyproject.toml's [tool.dg] describes (code location `imageflow`); installed without the
    source tree, a workspace file written under `home` names the same code location."""
    dg_dev = [sys.executable, "-m", "dagster_dg_cli.cli", "dev", "-h", "127.0.0.1", "-p", str(port)]
    if _is_dg_project(PROJECT_ROOT):
        return [*dg_dev, "--target-path", str(PROJECT_ROOT)]
    return [*dg_dev, "-w", str(_workspace(home))]


def _is_dg_project(root: Path) -> bool:
    try:
        return "dg" in tomllib.loads((root / "pyproject.toml").read_text()).get("tool", {})
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _workspace(home: Path) -> Path:
    generated = home / "workspace.yaml"
    generated.write_text(
        "load_from:\n"
        "  - python_module:\n"
        "      module_name: imageflow_dagster.definitions\n"
        "      location_name: imageflow\n"
    )
    return generated


def _active_venv() -> dict[str, str]:
    """`dg` warns when $VIRTUAL_ENV is not the project's .venv: name the environment it runs on, this one."""
    return {"VIRTUAL_ENV": sys.prefix} if sys.prefix != sys.base_prefix else {}


# ---- helpers
def _resources() -> dict:
    return build_resources(Settings.from_env())


def _demo() -> tuple[dict, list, dict]:
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


if __name__ == "__main__":
    raise SystemExit(main())
