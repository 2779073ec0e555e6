"""Dagster runs on a fleet of warm Celery workers (dagster-celery): the worker command and the launcher that
notices a worker that is gone."""
