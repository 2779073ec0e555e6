"""Deployment settings: every variable imageflow reads, each with one default, parsed and checked in this module.

`Settings.from_env()` runs where a process starts. definitions.py builds the code location from it: the sensors'
intervals, the retention schedule, and the resources (resources/__init__.py) that hand every other setting to
sensors, assets and ops, where the Dagster UI shows them. The CLI, the run worker and the local stack build their
own. Nothing below those entry points reads a setting from the environment, and a bad value stops the read with
one line naming its variable.

Three kinds of variable are read here without being fields of `Settings`:
- secrets (`secret`, `secret_values`): read when they are used and never held by a resource, because Dagster
  shows resource config in its UI and in run config;
- botocore's own variables (`aws_environment`): botocore reads them itself; imageflow keys its client cache on them;
- the seed's table variables (`seed_variable`): their names come from the seed's definitions file.
"""

import os
import re
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

MIN_CLAIM_LEASE_S = 10
OPENAI_API_KEY = "OPENAI_API_KEY"
ALERT_WEBHOOK_URL = "IMAGEFLOW_ALERT_WEBHOOK_URL"  # whoever has it can post to the channel: a secret


class SettingError(ValueError):
    """A variable holds a value imageflow cannot use: one line, naming the variable (the CLI prints just that)."""


# ---- how one variable is read: the field's default is its one default


def env_text(name: str, default: str | None, *, fallback: str | None = None, keep_empty: bool = False):
    """Text as given. Set but empty reads as unset, unless `keep_empty` (then empty is a value of its own)."""
    return _field(name, default, lambda raw: raw, fallback=fallback, keep_empty=keep_empty)


def env_int(name: str, default: int | None, minimum: int | None = None, what: str | None = None):
    def parse(raw: str) -> int:
        value = _number(name, raw, int, "an integer")
        if minimum is not None and value < minimum:
            raise SettingError(f"{name} must be {what or f'at least {minimum}'}, got {value}")
        return value

    return _field(name, default, parse)


def env_positive_int(name: str, default: int):
    return env_int(name, default, 1, "a positive integer")


def env_float(name: str, default: float | None):
    return _field(name, default, lambda raw: _number(name, raw, float, "a number"))


def env_list(name: str, default: str):
    """Comma-separated; the default is written as the variable would be."""
    return _field(name, _split(default), _split)


def env_choice(name: str, default: str, choices: tuple[str, ...]):
    return _field(name, default, lambda raw: _choice(name, raw, choices))


def env_flag(name: str, default: bool):
    return _field(name, default, lambda raw: _choice(name, raw, ("true", "false")) == "true")


def _field(name: str, default, parse, *, fallback: str | None = None, keep_empty: bool = False):
    names = (name, fallback) if fallback else (name,)
    return field(default=default, metadata={"variables": names, "parse": parse, "keep_empty": keep_empty})


def _number(name: str, raw: str, parse, what: str):
    try:
        return parse(raw)
    except ValueError:
        raise SettingError(f"{name} must be {what}, got {raw!r}") from None


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


class _FromEnvironment:
    @classmethod
    def from_env(cls):
        return cls(**{spec.name: _read(spec) for spec in fields(cls)})

    @classmethod
    def read(cls, name: str):
        """One setting alone, for code that serves every process rather than the code location (observability)."""
        [spec] = [spec for spec in fields(cls) if spec.name == name]
        return _read(spec)


def _read(spec):
    if "variables" not in spec.metadata:
        return spec.default_factory.from_env()  # a group of settings: Tables
    for name in spec.metadata["variables"]:
        raw = os.environ.get(name)
        if raw or (raw == "" and spec.metadata["keep_empty"]):
            return spec.metadata["parse"](raw)
    return spec.default


# ---- the settings


@dataclass(frozen=True)
class Tables(_FromEnvironment):
    """The seed's tables, by the seed's variables."""

    jobs: str = env_text("JOBS_TABLE", "leadmagnet-jobs")
    workflows: str = env_text("WORKFLOWS_TABLE", "leadmagnet-workflows")
    forms: str = env_text("FORMS_TABLE", "leadmagnet-forms")
    submissions: str = env_text("SUBMISSIONS_TABLE", "leadmagnet-submissions")
    artifacts: str = env_text("ARTIFACTS_TABLE", "leadmagnet-artifacts")
    usage_records: str = env_text("USAGE_RECORDS_TABLE", "leadmagnet-usage-records")
    # Read or written on the side: a missing one is a warning, never a failed job. USER_SETTINGS_TABLE is the
    # seed's API and CDK name; its worker's own fallback, `user_settings`, names no table it creates.
    user_settings: str = env_text("USER_SETTINGS_TABLE", "leadmagnet-user-settings")
    notifications: str = env_text("NOTIFICATIONS_TABLE", "leadmagnet-notifications")


@dataclass(frozen=True)
class Settings(_FromEnvironment):
    tables: Tables = field(default_factory=Tables)
    bucket: str = env_text("ARTIFACTS_BUCKET", "leadmagnet-artifacts")
    cloudfront_domain: str = env_text("CLOUDFRONT_DOMAIN", "")
    region: str = env_text("AWS_REGION", "us-east-1", fallback="AWS_DEFAULT_REGION")
    # Unset on AWS; the moto server locally. botocore reads them too: the S3 one is for public image URLs.
    aws_endpoint_url: str | None = env_text("AWS_ENDPOINT_URL", None)
    aws_endpoint_url_s3: str | None = env_text("AWS_ENDPOINT_URL_S3", None)
    openai_base_url: str | None = env_text("OPENAI_BASE_URL", None)
    default_text_model: str = env_text("IMAGEFLOW_DEFAULT_TEXT_MODEL", "gpt-5.2")
    default_image_model: str = env_text("IMAGEFLOW_DEFAULT_IMAGE_MODEL", "gpt-image-2.6-sunburst")
    # Lifecycle entries added to or overriding model_lifecycle.json: inline JSON or a file's path (lifecycle.py).
    model_replacements: str = env_text("IMAGEFLOW_MODEL_REPLACEMENTS", "")
    max_images_per_step: int = env_int("IMAGEFLOW_MAX_IMAGES_PER_STEP", 12)
    image_concurrency: int = env_int("IMAGEFLOW_IMAGE_CONCURRENCY", 8)
    openai_timeout_s: float = env_float("IMAGEFLOW_OPENAI_TIMEOUT_S", 600.0)
    openai_max_retries: int = env_int("IMAGEFLOW_OPENAI_MAX_RETRIES", 2)
    # Rate limits (resources/rate_budget.py): unset, learned from OpenAI's answers.
    images_per_minute: float | None = env_float("IMAGEFLOW_IMAGES_PER_MINUTE", None)
    tokens_per_minute: float | None = env_float("IMAGEFLOW_TOKENS_PER_MINUTE", None)
    rate_limit_wait_s: float = env_float("IMAGEFLOW_RATE_LIMIT_WAIT_S", 1800.0)
    rate_limits_table: str = env_text("IMAGEFLOW_RATE_LIMITS_TABLE", "imageflow-rate-limits")
    rate_limits_file: str | None = env_text("IMAGEFLOW_RATE_LIMITS_FILE", None)
    # The jobs sensor (sensors.py).
    claim_statuses: tuple[str, ...] = env_list("IMAGEFLOW_CLAIM_STATUSES", "processing")
    # Set but empty means "this jobs table has no status index": the sensor scans instead.
    jobs_status_index: str = env_text("IMAGEFLOW_JOBS_STATUS_INDEX", "gsi_status_created", keep_empty=True)
    # Every 2 s keeps a job's wait before its first OpenAI call under 10 s at p95, where 5 s did not
    # (BENCHMARKS.md 9a). A tick is one status-index query (at most 500 items) and two run-storage reads.
    sensor_interval_s: int = env_int("IMAGEFLOW_SENSOR_INTERVAL_S", 2)
    sensor_max_runs_per_tick: int = env_int("IMAGEFLOW_SENSOR_MAX_RUNS_PER_TICK", 50)
    # Jobs read per tick: bounds tick time (the daemon gives a tick 60 s) while thousands of jobs drain.
    sensor_max_items_per_tick: int = env_int("IMAGEFLOW_SENSOR_MAX_ITEMS_PER_TICK", 500)
    # A claim with no run after this long was made by a tick that died before submitting its runs.
    sensor_unlaunched_grace_s: int = env_int("IMAGEFLOW_SENSOR_UNLAUNCHED_GRACE_S", 60)
    run_status_sensor_interval_s: int = env_int("IMAGEFLOW_RUN_STATUS_SENSOR_INTERVAL_S", 10)
    # Fair share and backpressure (flow/admission.py): one tenant's runs queued or running at once, and the runs
    # waiting in Dagster's queue; the rest of the backlog waits in DynamoDB, unclaimed.
    max_jobs_per_tenant: int = env_positive_int("IMAGEFLOW_MAX_JOBS_PER_TENANT", 4)
    max_queued_runs: int = env_positive_int("IMAGEFLOW_MAX_QUEUED_RUNS", 4)
    # A run renews its claim every third of the lease: below 10 s one slow write could lose the job.
    claim_lease_s: int = env_int(
        "IMAGEFLOW_CLAIM_LEASE_S", 3600, MIN_CLAIM_LEASE_S,
        f"at least {MIN_CLAIM_LEASE_S} seconds (a run renews its claim every third of it)",
    )
    # Retention (retention/).
    partition_retention_days: int = env_int("IMAGEFLOW_PARTITION_RETENTION_DAYS", 14)
    # Dagster runs, with their event and compute logs, of jobs ended longer ago are deleted; 0: every ended job.
    # Unset: as long as partitions, so a job's partition and its runs leave Dagster together.
    run_retention_days: int | None = env_int(
        "IMAGEFLOW_RUN_RETENTION_DAYS", None, 0, "a number of days, 0 or more (0: the runs of every ended job)"
    )
    retention_cron: str = env_text("IMAGEFLOW_RETENTION_CRON", "17 3 * * *")
    io_manager: str = env_choice("IMAGEFLOW_IO_MANAGER", "fs", ("fs", "s3"))
    # During a migration from the seed's worker: claim only jobs handed over (flow/seed_handoff.py).
    require_handoff: bool = env_flag("IMAGEFLOW_REQUIRE_HANDOFF", False)
    # Webhook steps: hosts (names or IPs) that may resolve to private addresses, and the per-request timeout.
    webhook_allowed_hosts: tuple[str, ...] = env_list("IMAGEFLOW_WEBHOOK_ALLOWED_HOSTS", "")
    webhook_timeout_s: float = env_float("IMAGEFLOW_WEBHOOK_TIMEOUT_S", 30.0)
    # Handoff steps: how many handoffs may lead to one job (A -> B -> A ... stops there).
    max_handoff_depth: int = env_positive_int("IMAGEFLOW_MAX_HANDOFF_DEPTH", 5)
    # Alerts (alerts/): the Dagster UI's base URL for links to a failed job's run, and how often the sensor
    # ticks. The webhook itself is a secret: `secret(ALERT_WEBHOOK_URL)`.
    ui_url: str | None = env_text("IMAGEFLOW_UI_URL", None)
    alert_interval_s: int = env_int("IMAGEFLOW_ALERT_INTERVAL_S", 20)
    # Operators' logs and metrics (observability/): `json` writes one JSON object per log line; `emf` writes
    # CloudWatch embedded-metric-format lines (queue depth, rate-limit waits, failures) to stdout.
    log_format: str = env_choice("IMAGEFLOW_LOG_FORMAT", "text", ("text", "json"))
    metrics: str = env_choice("IMAGEFLOW_METRICS", "off", ("off", "emf"))

    def __post_init__(self):
        if self.run_retention_days is None:
            object.__setattr__(self, "run_retention_days", self.partition_retention_days)


# ---- variables that are no setting


def secret(name: str) -> str | None:
    """A secret (OPENAI_API_KEY, IMAGEFLOW_ALERT_WEBHOOK_URL), read when it is used: a key rotated or set after
    start-up is used too, and no resource, run config or UI page ever holds it."""
    return os.environ.get(name) or None


# Variables whose values are secrets whatever they look like (a short password is no token).
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|WEBHOOK_URL|DATABASE_URL|POSTGRES_URL|DSN")
MIN_SECRET_CHARS = 8


def secret_values() -> list[str]:
    """What no alert, log or metric line may carry, read now: the values of every variable named like a secret and
    the password of every URL-valued one (a Celery broker's URL is not secret, its password is). Longest first, so
    a key containing another is masked whole. Shorter values are left alone: masking "local" (the local stack's
    AWS secret) everywhere would garble the lines, and a real secret is never that short."""
    values = {v for name, v in os.environ.items() if SECRET_NAME.search(name.upper())}
    values |= {_url_password(v) for v in os.environ.values() if "://" in v}
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def _url_password(value: str) -> str:
    try:
        return urlsplit(value).password or ""
    except ValueError:
        return ""


def aws_environment(names: tuple[str, ...]) -> tuple[str | None, ...]:
    """botocore's own variables (endpoints, credentials, region, profile), which botocore reads by itself: a client
    or session made under other values must not be reused (resources/aws.py, aws_session.py)."""
    if not all(name.startswith("AWS_") for name in names):
        raise ValueError(f"not botocore's variables: {names}")
    return tuple(os.environ.get(name) or None for name in names)


def seed_variable(name: str) -> str | None:
    """A table variable of the seed's own (TEMPLATES_TABLE, ...), named in its definitions file: read as the seed's
    API reads it, for `imageflow bootstrap --seed-tables` (bootstrap.py)."""
    return os.environ.get(name) or None


# Dagster's run-status sensors handle at most 5 runs per tick by default (DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT,
# read by Dagster in the process that evaluates them: the code location's), every 30 s: a burst of crashed runs
# would leave its jobs `processing` for minutes. The fetch limit is the run events read per tick, any job's.
DAGSTER_DEFAULTS = {"DAGSTER_RUN_STATUS_SENSOR_PROCESS_LIMIT": "100", "DAGSTER_RUN_STATUS_SENSOR_FETCH_LIMIT": "200"}


def default_dagster_variables() -> None:
    """Dagster's own variables, set for this process where an operator has not: definitions.py calls it."""
    for name, value in DAGSTER_DEFAULTS.items():
        os.environ.setdefault(name, value)
