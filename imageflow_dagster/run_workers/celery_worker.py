"""`imageflow worker`: a Celery run worker for this code location, on dagster-celery's tasks.

Warm: the parent process imports Dagster's run-worker code, the SDKs and imageflow's definitions once; Celery's
prefork pool then forks children from it, so a run starts without a new interpreter and its imports.
Isolated: each child executes one run and exits (`worker_max_tasks_per_child=1`), so a crash or a leak in one
run never reaches the next. A worker holds no more runs than it has free children (`worker_disable_prefetch`,
Redis brokers): the others wait in the broker, where any free worker takes them, instead of sitting reserved
behind busy children, where a lost worker would strand them until Dagster's start timeout.
"""

import importlib
import os
import socket
import uuid

from celery import Celery

from imageflow_dagster.observability.logs import configure_process_logging

# Loaded in the parent before the pool forks; `module:function` also calls the function.
WARM_MODULES = (
    "dagster._cli.api",
    "dagster_aws.s3",
    "openai",
    "openai.resources.responses",
    "openai.resources.images",
    "PIL.Image",
    "imageflow_dagster.aws_session:warm",
    "imageflow_dagster.definitions",
)
DEFAULT_QUEUE = "dagster"  # dagster-celery's default queue, where CeleryRunLauncher sends runs


class WorkerConfigError(RuntimeError):
    pass


def celery_app(broker: str, backend: str, queue: str = DEFAULT_QUEUE) -> Celery:
    """dagster-celery's app with its run tasks registered, configured for one isolated run per child."""
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

    app = make_app(app_args={"broker": broker, "backend": backend, "include": [], "task_default_queue": queue})
    app.conf.update(
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        worker_max_tasks_per_child=1,
        # A run's task is acknowledged when it starts: if the worker dies, the broker must not hand the run to a
        # second worker behind Dagster's back; run monitoring fails it and Dagster's run retry starts it again.
        task_acks_late=False,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    create_execute_job_task(app)
    create_resume_job_task(app)
    return app


def worker_argv(concurrency: int, queue: str, name: str | None = None, loglevel: str = "INFO") -> list[str]:
    hostname = name or f"imageflow-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    return [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--queues={queue}",
        f"--hostname={hostname}",
        "--pool=prefork",
        "-O",
        "fair",  # hand a task only to a child that is free
    ]


def run_worker(concurrency: int, queue: str, name: str | None = None) -> int:
    broker, backend = _required("IMAGEFLOW_CELERY_BROKER_URL"), _required("IMAGEFLOW_CELERY_BACKEND_URL")
    _required("DAGSTER_HOME")  # each run opens the instance from $DAGSTER_HOME/dagster.yaml (deploy/dagster.yaml)
    _open_instance()
    for entry in WARM_MODULES:
        _warm(entry)
    argv = worker_argv(concurrency, queue, name)
    if _json_logs_if_asked():
        argv.insert(0, "--quiet")  # `celery --quiet worker`: no text banner at start-up
    celery_app(broker, backend, queue).worker_main(argv)
    return 0


def _json_logs_if_asked() -> bool:
    """IMAGEFLOW_LOG_FORMAT=json: the root logger writes JSON lines, and Celery, told so through its
    `setup_logging` signal, neither adds its own text handlers nor replaces stdout and stderr with its logger
    (which would prefix each line, and a JSON or EMF line would no longer parse)."""
    if configure_process_logging():
        from celery import signals

        signals.setup_logging.connect(_logging_already_configured, weak=False)
        return True
    return False


def _logging_already_configured(**_signal) -> None:
    """A receiver of Celery's `setup_logging`: that one is connected is what tells Celery to leave logging alone."""


def _open_instance() -> None:
    """Every run opens the instance; opening it once first means a worker whose storage is unusable exits with
    the storage's one-line reason (imageflow_dagster/instance_storage.py) instead of taking runs it can only fail."""
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        instance.get_runs_count()


def _warm(entry: str) -> None:
    module, _, function = entry.partition(":")
    loaded = importlib.import_module(module)
    if function:
        getattr(loaded, function)()


def _required(name: str) -> str:
    value = os.getenv(name)
    if not value:
        raise WorkerConfigError(f"{name} is not set: `imageflow worker` needs it (see deploy/README.md)")
    return value
