"""The Dagster storage deploy/dagster.yaml names: dagster-postgres's own, reached with DAGSTER_POSTGRES_URL in
whichever form a user, RDS or a secret store writes it.

SQLAlchemy 2.1 reads a bare `postgresql://` as psycopg 3, which is not installed (dagster-postgres brings
psycopg2), and refuses `postgres://` outright; either way the daemon died on a traceback and jobs sat in
`processing` with nothing in the UI. Here every common form is given the psycopg2 driver; anything else, and a
server that cannot be reached, ends the process with one line that names the variable and never the password.
"""

import sys
from urllib.parse import urlsplit

from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import DagsterPostgresException, get_token_provider_from_config, pg_url_from_config
from sqlalchemy.exc import OperationalError

VARIABLE = "DAGSTER_POSTGRES_URL"
DRIVER_SCHEME = "postgresql+psycopg2"
# How the same database is written: libpq's two schemes, and SQLAlchemy's with either psycopg driver named.
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")
EXAMPLE = "postgresql://user:password@host:5432/dagster"


class PostgresUrlError(ValueError):
    pass


def psycopg2_url(url: str) -> str:
    """`url` with the psycopg2 driver named; PostgresUrlError for anything that is not a PostgreSQL URL."""
    scheme, separator, rest = url.strip().partition("://")
    if not separator or scheme.lower() not in POSTGRES_SCHEMES or not urlsplit(url.strip()).hostname:
        shown = f"a {scheme!r} URL" if separator else "no URL"
        raise PostgresUrlError(f"{VARIABLE} must be a PostgreSQL URL such as {EXAMPLE}; it is {shown}")
    return f"{DRIVER_SCHEME}://{rest}"


def where(url: str) -> str:
    """host:port/database of `url`, for messages: never its user or password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


class ImageflowPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage with the URL read as users write it, and a readable exit when it is unusable."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        try:
            url = psycopg2_url(pg_url_from_config(config_value))
        except PostgresUrlError as exc:
            sys.exit(f"imageflow: {exc}")
        try:
            return cls(
                inst_data=inst_data,
                postgres_url=url,
                should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                token_provider=get_token_provider_from_config(config_value),
            )
        except (OperationalError, DagsterPostgresException) as exc:
            sys.exit(f"imageflow: cannot reach Dagster's Postgres at {where(url)} ({VARIABLE}): {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The driver's first line (connection refused, authentication failed, ...) under dagster-postgres's retries."""
    while exc.__cause__ is not None and not isinstance(exc, OperationalError):
        exc = exc.__cause__
    driver_error = getattr(exc, "orig", None) or exc
    return (str(driver_error).strip().splitlines() or [type(driver_error).__name__])[0]
