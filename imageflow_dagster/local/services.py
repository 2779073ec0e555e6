"""A real Postgres and a real Redis for as long as a `with` block lasts: tests (imageflow_dagster_tests/services.py)
and benchmarks (benchmarks/coordinator.py) run against the servers production uses, not stand-ins.

Each server runs from Debian's binaries (`scripts/ensure-services.sh` installs them) on a free port of
127.0.0.1, with its data in a temp dir that is removed at the end. Postgres refuses to run as root, so under
root it runs as the unprivileged `postgres` user (`nobody` when there is none). A missing binary raises
`ServiceUnavailable` saying what to install: callers decide whether that fails them, nothing silently skips.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15
PG_USER = "imageflow"
PG_DATABASE = "dagster"
INSTALL_HINT = (
    "run `bash scripts/ensure-services.sh` (as root), or `apt-get install -y postgresql redis-server`"
)


class ServiceUnavailable(RuntimeError):
    """The server could not be started; the message says why and, for missing binaries, what to install."""


@contextmanager
def running_postgres() -> Iterator[str]:
    """`postgresql://imageflow@127.0.0.1:PORT/dagster` on a fresh cluster (trust auth, local only)."""
    bin_dir = _postgres_bin_dir()
    user = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="imageflow-postgres-"))
    process = None
    try:
        _initdb(bin_dir, root, user)
        port = free_port()
        process = _start_postgres(bin_dir, root, port, user)
        server_url = f"postgresql://{PG_USER}@127.0.0.1:{port}"
        _wait_for_postgres(process, f"{server_url}/postgres", root / "postgres.log")
        create_database(f"{server_url}/postgres", PG_DATABASE)
        yield f"{server_url}/{PG_DATABASE}"
    finally:
        if process is not None:
            _stop(process, signal.SIGINT)  # Postgres "fast" shutdown: disconnects clients, no waiting on them
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0`, memory only (no RDB snapshots, no AOF)."""
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable(f"redis-server not found: {INSTALL_HINT}")
    root = Path(tempfile.mkdtemp(prefix="imageflow-redis-"))
    log = root / "redis.log"
    port = free_port()
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
        _wait_until_up("redis-server", process, log, lambda: _redis_answers(url))
        yield url
    finally:
        if process is not None:
            _stop(process, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    """The directory holding both `initdb` and `postgres`: PATH first, else Debian's newest major version."""
    on_path = [shutil.which(name) for name in ("initdb", "postgres")]
    if all(on_path):
        return Path(os.path.realpath(on_path[0])).parent
    for bin_dir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major_version, reverse=True):
        if all(os.access(Path(bin_dir) / name, os.X_OK) for name in ("initdb", "postgres")):
            return Path(bin_dir)
    raise ServiceUnavailable(f"Postgres server binaries (initdb, postgres) not found: {INSTALL_HINT}")


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
    raise ServiceUnavailable("running as root and neither a `postgres` nor a `nobody` user exists to run Postgres as")


def _as_user(user: pwd.struct_passwd | None) -> dict:
    """subprocess arguments that drop root for a child (setuid/setgid, no supplementary groups)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _postgres_env(root: Path) -> dict[str, str]:
    # HOME and cwd inside the temp dir: the unprivileged user may not read root's.
    return {**os.environ, "HOME": str(root), "LC_ALL": "C", "LANG": "C"}


def _initdb(bin_dir: Path, root: Path, user: pwd.struct_passwd | None) -> None:
    (root / "sockets").mkdir()
    if user is not None:
        for path in (root, root / "sockets"):
            os.chown(path, user.pw_uid, user.pw_gid)
    initdb = subprocess.run(
        [bin_dir / "initdb", "-D", root / "data", "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
        cwd=root, env=_postgres_env(root), capture_output=True, text=True, **_as_user(user),
    )
    if initdb.returncode != 0:
        raise ServiceUnavailable(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")


def _start_postgres(bin_dir: Path, root: Path, port: int, user: pwd.struct_passwd | None) -> subprocess.Popen:
    log = root / "postgres.log"
    with open(log, "w") as log_file:
        if user is not None:
            os.chown(log, user.pw_uid, user.pw_gid)
        return subprocess.Popen(
            [
                bin_dir / "postgres", "-D", root / "data", "-p", str(port), "-k", root / "sockets",
                "-c", "listen_addresses=127.0.0.1",
                # A throwaway cluster: durability is not wanted, speed is.
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            ],
            cwd=root, env=_postgres_env(root), stdout=log_file, stderr=subprocess.STDOUT, **_as_user(user),
        )


def _wait_for_postgres(process: subprocess.Popen, admin_url: str, log: Path) -> None:
    import psycopg2  # dagster-postgres's driver; imported here so Redis-only callers do not need it

    def connected() -> bool:
        try:
            psycopg2.connect(admin_url, connect_timeout=2).close()
            return True
        except psycopg2.OperationalError:
            return False

    _wait_until_up("postgres", process, log, connected, poll_s=0.1, not_up="not accepting connections")


def create_database(postgres_url: str, name: str) -> None:
    """CREATE DATABASE `name` on the server of `postgres_url` (any database of it)."""
    import psycopg2

    connection = psycopg2.connect(postgres_url)
    connection.autocommit = True  # CREATE DATABASE cannot run inside a transaction
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()


def celery_env(redis_url: str, first_db: int = 0) -> dict[str, str]:
    """deploy/dagster.yaml's Celery broker and result backend on the server of `redis_url`: databases `first_db`
    and the next one."""
    base = redis_url.rsplit("/", 1)[0]
    return {
        "IMAGEFLOW_CELERY_BROKER_URL": f"{base}/{first_db}",
        "IMAGEFLOW_CELERY_BACKEND_URL": f"{base}/{first_db + 1}",
    }


def _redis_answers(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.close()
        return True
    except redis.exceptions.ConnectionError:
        return False


def _wait_until_up(name: str, process: subprocess.Popen, log: Path, up: Callable[[], bool], poll_s: float = 0.05,
                   not_up: str = "not answering") -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise ServiceUnavailable(f"{name} exited with {process.returncode}:\n{log_tail(log)}")
        if up():
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{name} {not_up} after {START_TIMEOUT_S}s:\n{log_tail(log)}")
        time.sleep(poll_s)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen, sig: int) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
