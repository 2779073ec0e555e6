"""CloudWatch embedded metric format: one JSON line per observation, written to stdout when IMAGEFLOW_METRICS=emf.

A line is `{"_aws": {"Timestamp": ms, "CloudWatchMetrics": [{"Namespace": "imageflow", "Dimensions": [[], [...]],
"Metrics": [{"Name": ..., "Unit": ...}]}]}, <dimension>: "value", <metric>: number, <property>: ...}`. Every
metric is published without dimensions (the fleet's total) and, when the line has dimensions, once more per
their values (e.g. per Model). Properties (job and run ids) are not dimensions: they stay searchable in the
log line and cost no metric of their own.
"""

import json
import logging
import time
from typing import Any

from imageflow_dagster.observability.output import write_line
from imageflow_dagster.settings import Settings

NAMESPACE = "imageflow"
# Every metric imageflow emits, with its CloudWatch unit: the catalogue an operator graphs from.
UNITS = {
    "JobsWaiting": "Count",  # jobs `processing` and unclaimed that a sensor tick saw and left waiting
    "RunsQueued": "Count",  # runs in Dagster's queue, not yet started (this tick's requests included)
    "RunsRequested": "Count",  # runs a sensor tick requested
    "RateLimitWaitSeconds": "Seconds",  # one OpenAI call's wait for the rate limit (budget and 429s)
    "RateLimited429s": "Count",  # one OpenAI call's 429 rate_limit_exceeded answers
    "JobsFailed": "Count",  # a job that ended `failed`
}
_log = logging.getLogger(__name__)


def enabled() -> bool:
    """Read at every line, like the log format: metrics come from every process (runs, sensor ticks, the CLI),
    not only from the code location's definitions, and each process's environment decides."""
    return Settings.read("metrics") == "emf"


def emit(name_to_value: dict[str, float], dimensions: dict[str, str] | None = None, **properties: Any) -> None:
    """One EMF line, when metrics are on. A metric that cannot be written is logged, never raised: it must not
    fail the tick or the OpenAI call it measures."""
    try:
        if enabled():
            write_line(json.dumps(emf_document(name_to_value, dimensions or {}, properties), default=str))
    except (OSError, ValueError) as exc:
        _log.warning(f"metrics not written: {type(exc).__name__}: {exc}")


def emf_document(name_to_value: dict[str, float], dimensions: dict[str, str], properties: dict) -> dict:
    unknown = set(name_to_value) - set(UNITS)
    if unknown:
        raise ValueError(f"metric(s) not in the catalogue: {sorted(unknown)}")
    dimension_sets = [[], sorted(dimensions)] if dimensions else [[]]
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": dimension_sets,
        "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in name_to_value],
    }
    document = {key: value for key, value in properties.items() if value is not None}
    document.update({key: str(value) for key, value in dimensions.items()})
    document.update(name_to_value)
    document["_aws"] = {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [directive]}
    return document
