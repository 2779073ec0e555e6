"""`imageflow`: run the flow locally, create tables, submit jobs and read their status."""

# Parsing imports the standard library only (errors and openai_options are standard library too), so `--help`
# answers without loading Dagster, boto3 or the OpenAI SDK. Each command names its implementation as
# "module:function" in this package, imported once the arguments are parsed.
import argparse
import importlib
import os
import sys
from pathlib import Path

from imageflow_dagster.cli.errors import CliError, one_line
from imageflow_dagster.local.openai_options import DESCRIPTION, add_server_options

__all__ = ["CliError", "main"]
SEED_TABLES_HELP = (
    "also create every table and index the seed's infrastructure defines, and its bucket CORS rule, so the seed's "
    "own API (backend/api/server-local.js) runs against the same tables"
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits here on --help or a usage error
    module_name, _, function_name = args.run.partition(":")
    command = getattr(importlib.import_module(f"imageflow_dagster.cli.{module_name}"), function_name)
    # After the command's imports: what libraries log while being imported (alembic's plugins) stays unprinted.
    from imageflow_dagster.observability.logs import configure_process_logging

    configure_process_logging()  # IMAGEFLOW_LOG_FORMAT=json: library (boto, Celery) logs as JSON lines
    try:
        return command(args)
    except Exception as exc:
        message = one_line(exc)
        if message is None:
            raise
        print(f"imageflow: {message}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imageflow", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_dev(commands)
    _add_job_commands(commands)
    _add_process_commands(commands)
    return parser


def _add_dev(commands) -> None:
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
    dev.set_defaults(run="dev:dev")


def _add_job_commands(commands) -> None:
    boot = commands.add_parser("bootstrap", help="create the tables and the bucket if missing (idempotent)")
    boot.add_argument(
        "--public-images",
        action="store_true",
        help="let anyone read image files (*.png, *.jpg, ...): one statement added to the bucket policy, its other "
        "statements kept (for a local emulator; without it the policy is left as is)",
    )
    boot.add_argument("--seed-tables", action="store_true", help=SEED_TABLES_HELP)
    boot.set_defaults(run="jobs:bootstrap_tables")

    submit = commands.add_parser("submit", help="submit a job like the seed's API does; prints the job id")
    source = submit.add_mutually_exclusive_group(required=True)
    source.add_argument("--workflow", type=Path, help="seed-format workflow JSON file")
    source.add_argument("--demo", action="store_true", help="the demo workflow and answers")
    submit.add_argument("--answer", action="append", default=[], metavar="KEY=VALUE", help="a form answer (repeatable)")
    submit.add_argument("--answers", type=Path, help="JSON file of form answers")
    submit.add_argument("--tenant", default="tenant_demo", help="tenant id (default: tenant_demo)")
    submit.set_defaults(run="jobs:submit")

    status = commands.add_parser("status", help="status, live progress, image URLs and cost of a job")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(run="jobs:status")

    spend = commands.add_parser("spend", help="OpenAI cost per UTC day, tenant and model, from the usage rows")
    spend.add_argument("--since", required=True, metavar="DATE", help="first UTC day (YYYY-MM-DD)")
    spend.add_argument("--tenant", default=None, help="only this tenant (read from its tenant/date index)")
    spend.add_argument("--json", action="store_true", help="machine-readable output")
    spend.set_defaults(run="jobs:spend")


def _add_process_commands(commands) -> None:
    local = commands.add_parser(
        "local-openai", help="run the local OpenAI-compatible server in the foreground",
        description=DESCRIPTION,
    )
    add_server_options(local)
    local.set_defaults(run="processes:local_openai")

    worker = commands.add_parser("worker", help="a Celery run worker for deploy/dagster.yaml (needs the deploy extra)")
    worker.add_argument("--concurrency", type=int, default=2, help="runs executed at once (default: 2)")
    worker.add_argument("--queue", default="dagster", help="Celery queue to take runs from (default: dagster)")
    worker.add_argument("--name", default=None, help="worker name (default: imageflow-<random>@<host>)")
    worker.set_defaults(run="processes:worker")


def _env_flag(name: str) -> bool:
    return os.getenv(name, "").strip().lower() in ("1", "true", "yes")
