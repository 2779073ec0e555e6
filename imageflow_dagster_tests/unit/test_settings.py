"""settings.py, the one place imageflow reads its variables: one default each, one clear line for a bad value,
and the environment read nowhere else in the package but at its process entry points."""

import re
from dataclasses import fields
from pathlib import Path
from typing import get_args

import pytest

from imageflow_dagster.observability.redaction import redact
from imageflow_dagster.settings import Settings, Tables, aws_environment, secret, secret_values

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "imageflow_dagster"
# Where a process starts: they build their Settings (or read their own command's switches) from the environment.
ENTRY_POINTS = ("settings.py", "cli/", "run_workers/celery_worker.py", "local/")
ENVIRONMENT_READ = re.compile(r"os\.getenv|os\.environ")


def variables(group=Settings) -> dict[str, object]:
    """Every variable a field reads -> the field."""
    found = {}
    for spec in fields(group):
        if "variables" in spec.metadata:
            found.update({name: spec for name in spec.metadata["variables"]})
        else:
            found.update(variables(Tables))
    return found


@pytest.fixture
def clean_environment(monkeypatch):
    for name in variables():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_environment_is_read_only_in_settings_and_the_entry_points():
    readers = [
        f"{path.relative_to(PACKAGE_DIR)}:{number}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        if not str(path.relative_to(PACKAGE_DIR)).startswith(ENTRY_POINTS)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if ENVIRONMENT_READ.search(line)
    ]
    assert readers == []


def test_unset_variables_give_the_fields_defaults(clean_environment):
    assert Settings.from_env() == Settings()


def test_every_number_names_its_variable_in_one_line_when_it_is_not_one(clean_environment):
    numbers = [name for name, spec in variables().items() if {int, float} & {spec.type, *get_args(spec.type)}]
    assert {"IMAGEFLOW_SENSOR_INTERVAL_S", "IMAGEFLOW_IMAGES_PER_MINUTE", "IMAGEFLOW_RUN_RETENTION_DAYS"} <= set(numbers)
    for name in numbers:
        clean_environment.setenv(name, "ten")
        with pytest.raises(ValueError) as raised:
            Settings.from_env()
        assert str(raised.value).startswith(f"{name} must be ") and "\n" not in str(raised.value), name
        clean_environment.delenv(name)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("IMAGEFLOW_MAX_QUEUED_RUNS", "0", "IMAGEFLOW_MAX_QUEUED_RUNS must be a positive integer, got 0"),
        ("IMAGEFLOW_IO_MANAGER", "gcs", "IMAGEFLOW_IO_MANAGER must be one of fs, s3, got 'gcs'"),
        ("IMAGEFLOW_REQUIRE_HANDOFF", "yes", "IMAGEFLOW_REQUIRE_HANDOFF must be one of true, false, got 'yes'"),
        ("IMAGEFLOW_OPENAI_TIMEOUT_S", "10m", "IMAGEFLOW_OPENAI_TIMEOUT_S must be a number, got '10m'"),
    ],
)
def test_a_value_out_of_its_range_is_refused_naming_the_variable(clean_environment, name, value, message):
    clean_environment.setenv(name, value)
    with pytest.raises(ValueError) as raised:
        Settings.from_env()
    assert str(raised.value) == message


def test_values_are_parsed_once_into_their_types(clean_environment):
    clean_environment.setenv("IMAGEFLOW_CLAIM_STATUSES", " queued, retrying ,")
    clean_environment.setenv("IMAGEFLOW_REQUIRE_HANDOFF", "TRUE")
    clean_environment.setenv("IMAGEFLOW_SENSOR_INTERVAL_S", "7")
    clean_environment.setenv("IMAGEFLOW_PARTITION_RETENTION_DAYS", "30")
    clean_environment.setenv("JOBS_TABLE", "acme-jobs")
    read = Settings.from_env()
    assert read.claim_statuses == ("queued", "retrying") and read.require_handoff is True
    assert (read.sensor_interval_s, read.run_retention_days, read.tables.jobs) == (7, 30, "acme-jobs")
    assert Settings.read("sensor_interval_s") == 7


def test_empty_means_unset_except_for_the_status_index(clean_environment):
    clean_environment.setenv("IMAGEFLOW_IMAGE_CONCURRENCY", "")
    clean_environment.setenv("IMAGEFLOW_JOBS_STATUS_INDEX", "")  # set but empty: the table has no status index
    read = Settings.from_env()
    assert (read.image_concurrency, read.jobs_status_index) == (Settings().image_concurrency, "")


def test_the_region_falls_back_to_the_default_region(clean_environment):
    clean_environment.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert Settings.from_env().region == "eu-west-1"
    clean_environment.setenv("AWS_REGION", "eu-central-1")
    assert Settings.from_env().region == "eu-central-1"


def test_secrets_are_no_settings_and_are_read_when_used(clean_environment):
    assert not any("KEY" in name or "WEBHOOK_URL" in name for name in variables())
    clean_environment.setenv("OPENAI_API_KEY", "sk-first")
    assert secret("OPENAI_API_KEY") == "sk-first"
    clean_environment.setenv("OPENAI_API_KEY", "sk-rotated")
    assert secret("OPENAI_API_KEY") == "sk-rotated"


def test_only_botocores_variables_are_read_as_aws_environment(clean_environment):
    clean_environment.setenv("AWS_PROFILE", "ops")
    assert aws_environment(("AWS_PROFILE", "AWS_REGION")) == ("ops", None)
    with pytest.raises(ValueError):
        aws_environment(("OPENAI_API_KEY",))


def test_one_rule_names_the_secrets_for_alerts_and_logs(monkeypatch):
    """Values of secret-named variables and passwords inside URL-valued ones; never a whole harmless URL, never a
    value too short to be a real secret (the local stack's AWS secret is "local")."""
    monkeypatch.setenv("IMAGEFLOW_CELERY_BROKER_URL", "redis://:broker-pass-7781@redis:6379/0")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-0123456789abcdef")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    values = secret_values()
    assert {"broker-pass-7781", "sk-unit-0123456789abcdef"} <= set(values)
    assert "local" not in values and not any(v.startswith("redis://") for v in values)
    line = redact("connect redis://:broker-pass-7781@redis:6379/0 with sk-unit-0123456789abcdef")
    assert line == "connect redis://:[redacted]@redis:6379/0 with [redacted]"
