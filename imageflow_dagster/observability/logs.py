"""JSON log lines: one object per record, with the job and run it belongs to when known.

Two ways in, both switched by IMAGEFLOW_LOG_FORMAT=json:
- Runs: deploy/dagster.yaml's `python_logs.dagster_handler_config` names `run_log_handler` and `JsonFormatter`.
  Dagster hands that handler every record of a run (its events and `context.log`), with `dagster_meta`: the run
  id, the run's tags (imageflow/job_id, or the partition key for a run launched by hand before its tags are
  added) and the Dagster event. Instance config cannot read an environment variable there, so the handler
  factory reads the setting: text mode gets a handler that drops everything, as Dagster's own console logger
  already prints the run's text.
- `imageflow` commands and `imageflow worker`: configure_process_logging puts one JSON handler on the root
  logger (Celery's and the SDKs' records, and what Celery redirects from stdout and stderr).
"""

import json
import logging
from datetime import datetime, timezone
from typing import Any

from imageflow_dagster.observability.output import write_line
from imageflow_dagster.run_tags import JOB_TAG, TENANT_TAG, WORKFLOW_TAG
from imageflow_dagster.settings import Settings

PARTITION_TAG = "dagster/partition"
DAGSTER_META = "dagster_meta"
# Ids a record may carry itself (`log.info(..., extra={"job_id": ...})`).
ID_ATTRIBUTES = ("job_id", "run_id", "tenant_id")


class JsonFormatter(logging.Formatter):
    """time (UTC, ms), level, logger, message; job_id, run_id, tenant_id, workflow_id, step, event and error
    when the record knows them; exception when it has one. Keys without a value are left out."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in ID_ATTRIBUTES if getattr(record, name, None)})
        entry.update(_dagster_fields(getattr(record, DAGSTER_META, None)))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JsonLineHandler(logging.Handler):
    """Writes each formatted record as one line to the process's stdout."""

    def __init__(self, level: int = logging.NOTSET):
        super().__init__(level)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_line(self.format(record))
        except Exception:  # a log line must never fail the work it describes
            self.handleError(record)


def run_log_handler() -> logging.Handler:
    """dagster.yaml's handler factory: JSON lines in json mode, nothing in text mode."""
    if Settings.read("log_format") != "json":
        return logging.NullHandler()
    return JsonLineHandler()


def configure_process_logging(settings: Settings | None = None) -> bool:
    """In json mode, the root logger writes JSON lines (INFO and up) and nothing else; text mode changes nothing.
    Returns whether it switched."""
    if (settings.log_format if settings else Settings.read("log_format")) != "json":
        return False
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(JsonLineHandler())
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)  # Python's warnings as records too, not text on stderr
    return True


def _dagster_fields(meta: dict | None) -> dict[str, Any]:
    """What a Dagster record says about its run: the message as logged (not Dagster's `job - run - step -`
    prefix line), the ids from the run's tags, the step and the event."""
    if not meta:
        return {}
    tags = meta.get("job_tags") or {}
    fields = {
        "message": meta.get("orig_message"),
        "run_id": meta.get("run_id"),
        "job_id": tags.get(JOB_TAG) or tags.get(PARTITION_TAG),
        "tenant_id": tags.get(TENANT_TAG),
        "workflow_id": tags.get(WORKFLOW_TAG),
        "dagster_job": meta.get("job_name"),
        "step": meta.get("step_key"),
    }
    event = meta.get("dagster_event")
    if event is not None:
        fields["event"] = event.event_type.name  # RUN_START, not its stored value PIPELINE_START
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            fields["error"] = error.to_string()
    return {key: value for key, value in fields.items() if value}
