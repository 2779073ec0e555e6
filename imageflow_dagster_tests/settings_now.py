"""The `settings` resource as a code location loaded now would build it (definitions.py builds it once, from the
environment): tests that set an IMAGEFLOW_* variable, then tick a sensor or run a job, hand it over like any
other resource."""

from imageflow_dagster.resources.settings import SettingsResource
from imageflow_dagster.settings import Settings


def settings_now() -> SettingsResource:
    return SettingsResource.of(Settings.from_env())
