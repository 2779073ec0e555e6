"""The settings the jobs and alert sensors, the run's setup and the retention ops read, as one Dagster resource.

Handed to them like the other resources (tests override it the same way), so no sensor, asset or op reads the
environment, and the Dagster UI lists the values the code location runs with (resources/__init__.py). settings.py
reads and checks each value and holds its one default; the settings the other resources need are their fields.
No secret is a field: Dagster shows resource config in its UI and in run config (settings.secret)."""

import dagster as dg

from imageflow_dagster.settings import Settings


class SettingsResource(dg.ConfigurableResource):
    """What each field means is said where settings.py reads it; the names are the same."""

    # The jobs sensor (sensors.py) and its fair share (flow/admission.py).
    claim_statuses: list[str]
    jobs_status_index: str
    require_handoff: bool
    sensor_max_runs_per_tick: int
    sensor_max_items_per_tick: int
    sensor_unlaunched_grace_s: int
    max_jobs_per_tenant: int
    max_queued_runs: int
    # The run's webhook and handoff steps (assets/run_setup.py).
    webhook_allowed_hosts: list[str]
    webhook_timeout_s: float
    max_handoff_depth: int
    # Retention (retention/) and alerts (alerts/).
    partition_retention_days: int
    run_retention_days: int
    ui_url: str | None

    @classmethod
    def of(cls, settings: Settings) -> "SettingsResource":
        return cls(**{name: _config_value(getattr(settings, name)) for name in cls.model_fields})


def _config_value(value):
    return list(value) if isinstance(value, tuple) else value  # Dagster config has lists, not tuples
