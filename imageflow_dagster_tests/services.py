"""Pytest plugin: a real Postgres and a real Redis, started by the tests themselves for the test session.

Each server runs from Debian's binaries (`scripts/ensure-services.sh` installs them) on a free port of
127.0.0.1, with its data in a temp dir that is removed at the end. Postgres refuses to run as root, so under
root it runs as the unprivileged `postgres` user (`nobody` when there is none). Missing binaries FAIL the
tests that need them, with what to install: a deploy test that silently skipped would prove nothing.
"""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
PG_USER = "imageflow"
PG_DATABASE = "dagster"
INSTALL_HINT = (
    "run `bash scripts/ensure-services.sh` (as root), or `apt-get install -y postgresql redis-server`"
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin_dir() -> Path:
    """The directory holding both `initdb` and `postgres`: PATH first, else Debian's newest major version."""
    on_path = [shutil.which(name) for name in ("initdb", "postgres")]
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True):
        if all(os.access(Path(bin_dir) / name, os.X_OK) for name in ("initdb", "postgres")):
            return Path(bin_dir)
    pytest.fail(f"Postgres server binaries (initdb, postgres) not found: {INSTALL_HINT}", pytrace=False)


def _major_version(bin_dir: str) -> int:
    version = Path(bin_dir).parent.name
    return int(version) if version.isdigit() else 0


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs Postgres: ourselves, unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root and neither a `postgres` nor a `nobody` user exists to run Postgres as",
                pytrace=False)


def _as_user(user: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that drop root for a child (setuid/setgid, no supplementary groups)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _stop(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """`postgresql://imageflow@127.0.0.1:PORT/dagster` on a fresh cluster (trust auth, local only)."""
    import psycopg2  # dagster-postgres's driver; imported here so other tests do not need it

    bin_dir = _postgres_bin_dir()
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="imageflow-postgres-"))
    data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
    sockets.mkdir()
    if user is not None:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    # HOME and cwd inside the temp dir: the unprivileged user may not read root's.
    env = {**os.environ, "HOME": str(root), "LC_ALL": "C", "LANG": "C"}
    process = None
    try:
        initdb = subprocess.run(
            [bin_dir / "initdb", "-D", data, "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            cwd=root, env=env, capture_output=True, text=True, **_as_user(user),
        )
        if initdb.returncode != 0:
            output = f"{initdb.stdout}\n{initdb.stderr}"
            pytest.fail(f"initdb failed ({initdb.returncode}):\n{output}", pytrace=False)
        port = _free_port()
        with open(log, "w") as log_file:
            if user is not None:
                os.chown(log, user.pw_uid, user.pw_gid)
            process = subprocess.Popen(
                [
                    bin_dir / "postgres", "-D", data, "-p", str(port), "-k", sockets,
                    "-c", "listen_addresses=127.0.0.1",
                    # A throwaway cluster: durability is not wanted, speed is.
                    "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                ],
                cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, **_as_user(user),
            )
        admin_dsn = f"host=127.0.0.1 port={port} user={PG_USER} dbname=postgres"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"postgres exited with {process.returncode}:\n{_tail(log)}", pytrace=False)
            try:
                connection = psycopg2.connect(admin_dsn, connect_timeout=2)
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres not accepting connections after {START_TIMEOUT_S}s:\n{_tail(log)}",
                                pytrace=False)
                time.sleep(0.1)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        connection.close()
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/{PG_DATABASE}"
    finally:
        if process is not None:
            _stop(process, signal.SIGINT)  # Postgres "fast" shutdown: disconnects clients, no waiting on them
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0`, memory only (no RDB snapshots, no AOF)."""
    import redis

    server = shutil.which("redis-server")
    if server is None:
        pytest.fail(f"redis-server not found: {INSTALL_HINT}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="imageflow-redis-"))
    log = root / "redis.log"
    port = _free_port()
    process = None
    try:
        with open(log, "w") as log_file:
            process = subprocess.Popen(
                [
                    server, "--port", str(port), "--bind", "127.0.0.1", "--dir", root,
                    "--save", "", "--appendonly", "no", "--daemonize", "no",
                ],
                cwd=root, stdout=log_file, stderr=subprocess.STDOUT,
            )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"redis-server exited with {process.returncode}:\n{_tail(log)}", pytrace=False)
            try:
                client = redis.Redis.from_url(url, socket_connect_timeout=2)
                client.ping()
                client.close()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"redis-server not answering after {START_TIMEOUT_S}s:\n{_tail(log)}", pytrace=False
                    )
                time.sleep(0.05)
        yield url
    finally:
        if process is not None:
            _stop(process, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
