"""`imageflow local-openai` and `imageflow worker`: long-running processes in the foreground."""

import argparse

from imageflow_dagster.cli.errors import CliError


def local_openai(args: argparse.Namespace) -> int:
    from imageflow_dagster.local.openai_server import serve

    return serve(args)


def worker(args: argparse.Namespace) -> int:
    try:
        from imageflow_dagster.run_workers.celery_worker import WorkerConfigError, run_worker
    except ImportError as exc:  # celery comes with the deploy extra
        raise CliError(f"{exc.name} is missing: install the deploy extra (pip install -e '.[deploy]')") from None
    try:
        return run_worker(args.concurrency, args.queue, args.name)
    except WorkerConfigError as exc:
        raise CliError(str(exc)) from None
