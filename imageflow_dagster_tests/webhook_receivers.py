"""Real HTTP receivers on 127.0.0.1 for the webhook tests, and the seed-format webhook workflows they are sent."""

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imageflow_dagster_tests.conftest import read_json_object
from imageflow_dagster_tests.workflows import text_step


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    delay_s: float  # waited before answering


@dataclass
class Receiver:
    """A real HTTP server recording every request; answers come from `answers` in turn, then 200."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def answer(self, status: int, body: bytes = b"", delay_s: float = 0.0, **headers: str) -> None:
        self.answers.append(Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body, delay_s))

    def record(self, handler: BaseHTTPRequestHandler) -> Answer:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Received(handler.command, handler.path, headers, body))
            return self.answers.pop(0) if self.answers else Answer(200, {}, b'{"received": true}', 0.0)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            answer = state.record(self)
            time.sleep(answer.delay_s)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

        def log_message(self, *args) -> None:
            pass

    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        state.port = port
        yield state


@dataclass
class Trickler:
    url: str
    requests: int = 0


@contextmanager
def running_trickler(at_once: bytes, trickled: bytes, every_s: float) -> Iterator[Trickler]:
    """A receiver that reads a request, sends `at_once`, then `trickled` one byte every `every_s` until it is all
    sent or the client goes away: each read finds a byte in time, only a deadline on the whole call ends it."""
    state = Trickler(url="")

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            self.rfile.read(length)
            state.requests += 1
            try:
                self.wfile.write(at_once)
                for byte in trickled:
                    time.sleep(every_s)
                    self.wfile.write(bytes([byte]))
            except OSError:  # the client gave up
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.block_on_close = True, False
    with _serving(server) as port:
        state.url = f"http://127.0.0.1:{port}/hook"
        yield state


@contextmanager
def _serving(server: socketserver.TCPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def webhook_step(name: str, order: int, url: str, depends_on=None, **fields) -> dict:
    """A webhook step as the seed's API stores it (its defaults filled in)."""
    step = {
        "step_name": name,
        "step_order": order,
        "instructions": "",
        "webhook_url": url,
        "webhook_method": "POST",
        "webhook_content_type": "application/json",
        "webhook_body_mode": "auto",
        **fields,
    }
    if depends_on is not None:
        step["depends_on"] = depends_on
    return step


def notify_workflow(url: str, **fields) -> dict:
    return {
        "workflow_name": "Notify",
        "steps": [
            text_step("Research", "Research the company.", 0),
            webhook_step("Notify CRM", 1, url, **fields),
        ],
    }


def execution_steps(pipeline, s3_client, settings, job) -> list[dict]:
    key = pipeline.job(job.job_id)["execution_steps_s3_key"]
    return read_json_object(s3_client, settings.bucket, key)
