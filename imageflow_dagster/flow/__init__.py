"""The image flow as plain functions; the Dagster assets call these."""
