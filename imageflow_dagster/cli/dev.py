"""`imageflow dev`: the embedded local stack (moto, the local OpenAI server) and `dg dev` on it, with a demo job."""

import argparse
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from imageflow_dagster.cli.errors import CliError
from imageflow_dagster.cli.jobs import demo_job, job_report, resources_from_env
from imageflow_dagster.submit import submit_job

if sys.version_info >= (3, 11):
    import tomllib
else:  # 3.10: the same parser from PyPI (setup.py declares tomli there)
    import tomli as tomllib

ENDED = ("completed", "failed")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the source tree (pyproject.toml with [tool.dg])


def dev(args: argparse.Namespace) -> int:
    from imageflow_dagster.local.extra import missing_local_extra

    missing = missing_local_extra()
    if missing:
        needs = "`imageflow dev` needs the local extra (pip install -e '.[local]')"
        raise CliError(f"{', '.join(missing)} missing: {needs}")
    from imageflow_dagster.local.stack import LocalStack, wait_for_http  # needs the local extra checked above

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
        endpoints = f"moto {stack.env['AWS_ENDPOINT_URL']}, OpenAI {stack.env['OPENAI_BASE_URL']}"
        print(f"local stack: {endpoints}, data {stack.home}")
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
        built = resources_from_env()
        workflow, fields, answers = demo_job()
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
