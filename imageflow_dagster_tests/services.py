"""Pytest plugin: a real Postgres and a real Redis, started by the tests themselves for the test session.

The servers are imageflow_dagster/local/services.py's (Debian's binaries, a free port, a temp dir removed at the
end). Missing binaries FAIL the tests that need them, with what to install: a deploy test that silently skipped
would prove nothing.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from imageflow_dagster.local.services import ServiceUnavailable, running_postgres, running_redis


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://imageflow@127.0.0.1:PORT/dagster` on a fresh cluster (trust auth, local only)."""
    yield from _started(running_postgres)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0`, memory only (no RDB snapshots, no AOF)."""
    yield from _started(running_redis)


def _started(service: Callable[[], AbstractContextManager[str]]) -> Iterator[str]:
    try:
        with service() as url:
            yield url
    except ServiceUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
