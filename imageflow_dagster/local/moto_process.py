"""moto in its own process, shared by every process of `dg dev` (webserver, daemon, code server, runs).

moto keeps state in the process that serves it and has no persistence of its own, so this process pickles the
DynamoDB and S3 backends on exit (and every few seconds) and restores them on start: local jobs, images and
records survive a restart. The snapshot is tied to the pinned moto version; an unreadable one starts empty.

    python -m imageflow_dagster.local.moto_process --port 4566 --state-file .imageflow/moto-state.pickle
"""

import argparse
import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from moto.backends import get_backend
from moto.server import ThreadedMotoServer

from imageflow_dagster.local.moto_atomic import serialize_dynamodb_requests

SERVICES = ("dynamodb", "s3")


@contextmanager
def running_moto(credential: str = "testing", region: str = "us-east-1") -> Iterator[dict[str, str]]:
    """moto over HTTP inside this process for as long as the block lasts (tests, benchmarks), with DynamoDB's
    conditional writes atomic as in AWS. os.environ points boto3 at it until the block ends; yields those
    variables for child processes."""
    serialize_dynamodb_requests()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    aws_env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": credential,
        "AWS_SECRET_ACCESS_KEY": credential, "AWS_REGION": region, "AWS_DEFAULT_REGION": region,
    }
    try:
        with mock.patch.dict(os.environ, aws_env):
            yield aws_env
    finally:
        server.stop()


def load_state(path: str) -> bool:
    if not path or not os.path.exists(path):
        return False
    try:
        with open(path, "rb") as handle:
            snapshot = pickle.load(handle)
        for service in SERVICES:
            get_backend(service).update(snapshot[service])
        return True
    except Exception as exc:  # a snapshot from another moto version: start empty rather than not at all
        print(f"moto: ignoring unreadable state file {path}: {type(exc).__name__}", file=sys.stderr, flush=True)
        return False


def save_state(path: str, lock: threading.Lock, attempts: int = 3) -> bool:
    """Snapshot moto's backends; False when requests kept changing them while pickling (the next save retries).

    moto's request threads write without this lock, so pickling can meet a dict changing size: that snapshot is
    dropped instead of taking the whole server down."""
    if not path:
        return True
    with lock:
        temporary = f"{path}.tmp"
        for _ in range(attempts):
            try:
                snapshot = {service: dict(get_backend(service)) for service in SERVICES}
                with open(temporary, "wb") as handle:
                    pickle.dump(snapshot, handle)
            except RuntimeError:  # "dictionary changed size during iteration"
                continue
            os.replace(temporary, path)  # a crash mid-write never leaves a half snapshot
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--state-file", default="")
    parser.add_argument("--save-every", type=float, default=10.0, help="seconds between snapshots")
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request would drown the dev console
    restored = load_state(args.state_file)
    serialize_dynamodb_requests()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"ready http://{host}:{port} restored={str(restored).lower()}", flush=True)
    stopped, lock = threading.Event(), threading.Lock()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    while not stopped.wait(args.save_every):
        save_state(args.state_file, lock)
    save_state(args.state_file, lock)
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
