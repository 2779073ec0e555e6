"""Deployment settings, read once from the environment with the seed system's variable names."""

import os
from dataclasses import dataclass, field

MIN_CLAIM_LEASE_S = 10


def _env(name: str, default: str) -> str:
    value = os.getenv(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return _env_number(name, default, int, "an integer")


def _env_float(name: str, default: float | None) -> float | None:
    return _env_number(name, default, float, "a number")


def _env_number(name: str, default, parse, what: str):
    raw = os.getenv(name)
    if raw in (None, ""):
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {what}, got {raw!r}") from exc


def _env_positive_int(name: str, default: int) -> int:
    return _env_int_at_least(name, default, 1, "a positive integer")


def _env_int_at_least(name: str, default: int, minimum: int, what: str) -> int:
    value = _env_int(name, default)
    if value < minimum:
        raise ValueError(f"{name} must be {what}, got {value}")
    return value


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in _env(name, default).split(",") if part.strip())


def _env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Tables:
    jobs: str
    workflows: str
    forms: str
    submissions: str
    artifacts: str
    usage_records: str
    # The seed's tables imageflow reads or writes on the side: a missing one is a warning, never a failed job.
    user_settings: str = "leadmagnet-user-settings"
    notifications: str = "leadmagnet-notifications"


@dataclass(frozen=True)
class Settings:
    tables: Tables
    bucket: str
    cloudfront_domain: str
    region: str
    aws_endpoint_url: str | None
    openai_base_url: str | None
    default_text_model: str
    default_image_model: str
    max_images_per_step: int
    image_concurrency: int
    openai_timeout_s: float
    openai_max_retries: int
    images_per_minute: float | None = None
    tokens_per_minute: float | None = None
    rate_limit_wait_s: float = 1800.0
    rate_limits_table: str = "imageflow-rate-limits"
    rate_limits_file: str | None = None
    claim_statuses: tuple[str, ...] = field(default=("processing",))
    jobs_status_index: str = "gsi_status_created"
    sensor_max_runs_per_tick: int = 50
    # Fair share and backpressure (flow/admission.py): one tenant's runs queued or running at once, and the runs
    # waiting in Dagster's queue; the rest of the backlog waits in DynamoDB, unclaimed.
    max_jobs_per_tenant: int = 4
    max_queued_runs: int = 4
    claim_lease_s: int = 3600
    partition_retention_days: int = 14
    # Dagster runs, with their event and compute logs, of jobs ended longer ago are deleted; 0: every ended job.
    run_retention_days: int = 14
    io_manager: str = "fs"
    require_handoff: bool = False
    # Webhook steps: hosts (names or IPs) that may resolve to private addresses, and the per-request timeout.
    webhook_allowed_hosts: tuple[str, ...] = ()
    webhook_timeout_s: float = 30.0
    # Handoff steps: how many handoffs may lead to one job (A -> B -> A ... stops there).
    max_handoff_depth: int = 5
    # Alerts (alerts/): a Slack-compatible incoming webhook (a secret: never logged), and the Dagster UI's base URL
    # for links to a failed job's run.
    alert_webhook_url: str | None = field(default=None, repr=False)
    ui_url: str | None = None
    # Operators' logs and metrics (observability/): `json` writes one JSON object per log line; `emf` writes
    # CloudWatch embedded-metric-format lines (queue depth, rate-limit waits, failures) to stdout.
    log_format: str = "text"
    metrics: str = "off"

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            tables=Tables(
                jobs=_env("JOBS_TABLE", "leadmagnet-jobs"),
                workflows=_env("WORKFLOWS_TABLE", "leadmagnet-workflows"),
                forms=_env("FORMS_TABLE", "leadmagnet-forms"),
                submissions=_env("SUBMISSIONS_TABLE", "leadmagnet-submissions"),
                artifacts=_env("ARTIFACTS_TABLE", "leadmagnet-artifacts"),
                usage_records=_env("USAGE_RECORDS_TABLE", "leadmagnet-usage-records"),
                # The seed's API and CDK name; its worker's own fallback, `user_settings`, names no table it creates.
                user_settings=_env("USER_SETTINGS_TABLE", "leadmagnet-user-settings"),
                notifications=_env("NOTIFICATIONS_TABLE", "leadmagnet-notifications"),
            ),
            bucket=_env("ARTIFACTS_BUCKET", "leadmagnet-artifacts"),
            cloudfront_domain=_env("CLOUDFRONT_DOMAIN", ""),
            region=_env("AWS_REGION", _env("AWS_DEFAULT_REGION", "us-east-1")),
            aws_endpoint_url=os.getenv("AWS_ENDPOINT_URL") or None,
            openai_base_url=os.getenv("OPENAI_BASE_URL") or None,
            default_text_model=_env("IMAGEFLOW_DEFAULT_TEXT_MODEL", "gpt-5.2"),
            default_image_model=_env("IMAGEFLOW_DEFAULT_IMAGE_MODEL", "gpt-image-2.6-sunburst"),
            max_images_per_step=_env_int("IMAGEFLOW_MAX_IMAGES_PER_STEP", 12),
            image_concurrency=_env_int("IMAGEFLOW_IMAGE_CONCURRENCY", 8),
            openai_timeout_s=float(_env("IMAGEFLOW_OPENAI_TIMEOUT_S", "600")),
            openai_max_retries=_env_int("IMAGEFLOW_OPENAI_MAX_RETRIES", 2),
            images_per_minute=_env_float("IMAGEFLOW_IMAGES_PER_MINUTE", None),
            tokens_per_minute=_env_float("IMAGEFLOW_TOKENS_PER_MINUTE", None),
            rate_limit_wait_s=_env_float("IMAGEFLOW_RATE_LIMIT_WAIT_S", 1800.0),
            rate_limits_table=_env("IMAGEFLOW_RATE_LIMITS_TABLE", "imageflow-rate-limits"),
            rate_limits_file=os.getenv("IMAGEFLOW_RATE_LIMITS_FILE") or None,
            claim_statuses=_env_list("IMAGEFLOW_CLAIM_STATUSES", "processing"),
            # Set but empty means "this jobs table has no status index": the sensor scans instead.
            jobs_status_index=os.getenv("IMAGEFLOW_JOBS_STATUS_INDEX", "gsi_status_created"),
            sensor_max_runs_per_tick=_env_int("IMAGEFLOW_SENSOR_MAX_RUNS_PER_TICK", 50),
            max_jobs_per_tenant=_env_positive_int("IMAGEFLOW_MAX_JOBS_PER_TENANT", 4),
            max_queued_runs=_env_positive_int("IMAGEFLOW_MAX_QUEUED_RUNS", 4),
            # A run renews its claim every third of the lease: below 10 s one slow write could lose the job.
            claim_lease_s=_env_int_at_least(
                "IMAGEFLOW_CLAIM_LEASE_S", 3600, MIN_CLAIM_LEASE_S,
                f"at least {MIN_CLAIM_LEASE_S} seconds (a run renews its claim every third of it)",
            ),
            partition_retention_days=_env_int("IMAGEFLOW_PARTITION_RETENTION_DAYS", 14),
            # Unset: as long as partitions, so a job's partition and its runs leave Dagster together.
            run_retention_days=_env_int_at_least(
                "IMAGEFLOW_RUN_RETENTION_DAYS", _env_int("IMAGEFLOW_PARTITION_RETENTION_DAYS", 14), 0,
                "a number of days, 0 or more (0: the runs of every ended job)",
            ),
            io_manager=_env_choice("IMAGEFLOW_IO_MANAGER", "fs", ("fs", "s3")),
            require_handoff=_env_choice("IMAGEFLOW_REQUIRE_HANDOFF", "false", ("true", "false")) == "true",
            webhook_allowed_hosts=_env_list("IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS", ""),
            webhook_timeout_s=_env_float("IMAGEFLOW_WEBHOOK_TIMEOUT_S", 30.0),
            max_handoff_depth=_env_positive_int("IMAGEFLOW_MAX_HANDOFF_DEPTH", 5),
            alert_webhook_url=os.getenv("IMAGEFLOW_ALERT_WEBHOOK_URL") or None,
            ui_url=os.getenv("IMAGEFLOW_UI_URL") or None,
            log_format=_env_choice("IMAGEFLOW_LOG_FORMAT", "text", ("text", "json")),
            metrics=_env_choice("IMAGEFLOW_METRICS", "off", ("off", "emf")),
        )
