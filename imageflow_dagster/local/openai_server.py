"""imageflow's own OpenAI-compatible server: the offline backend of `imageflow dev`, the tests' double and the
benchmarks' latency and fault injector.

It answers `POST /v1/images/generations` and `POST /v1/responses` with bodies that pass the official SDK's strict
response validation, real PNG/JPEG/WebP bytes of the requested size, and usage. Faults are chosen per request by
markers in the prompt (`[[img-fault:NAME]]` for images, `[[resp-fault:NAME]]` for planner/text calls; `NAME` may
end in `xK`: only the first K identical requests fail) or by rules added through the Python or HTTP control API.
Planner answers are shaped by `[[images:N]]`, `[[plan:fenced|prose|empty|garbage|blank-prompts]]`, and
`[[imageK:X]]` appends `[[X]]` to the K-th planned prompt (see openai_text).

Account limits as OpenAI enforces them (see openai_limits): images per minute, one limit for all models or one per
model, by a token bucket or a rolling minute, refused calls counted or not (429 `rate_limit_exceeded` with
retry-after and x-ratelimit-* headers; see openai_ratelimit), shut-down models (404 `model_not_found`) and an
exhausted quota (429 `insufficient_quota`). Sizes and qualities are validated per model (see openai_validation).

Modules: openai_state (settings, log, counters), openai_routes (the two API routes and faults), openai_limits,
openai_ratelimit, openai_validation, openai_media (image bytes, tokens), openai_text (canned planner/report
text), openai_errors.
"""

import argparse
import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from imageflow_dagster.local import openai_state
from imageflow_dagster.local.openai_errors import ApiError
from imageflow_dagster.local.openai_limits import AccountLimits
from imageflow_dagster.local.openai_media import OUTPUT_TOKENS
from imageflow_dagster.local.openai_options import DESCRIPTION, add_server_options
from imageflow_dagster.local.openai_routes import FAULTS, images, log_entry, responses
from imageflow_dagster.local.openai_state import FaultRule, ServerState
from imageflow_dagster.local.openai_validation import IMAGE_MODEL_PREFIXES, PIL_FORMATS

__all__ = [
    "FAULTS",
    "IMAGE_MODEL_PREFIXES",
    "OUTPUT_TOKENS",
    "PIL_FORMATS",
    "ApiError",
    "FaultRule",
    "LocalOpenAIServer",
    "main",
]
ROUTES = {"/v1/images/generations": ("images", images), "/v1/responses": ("responses", responses)}


class LocalOpenAIServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        image_latency_s: float = 0.0,
        response_latency_s: float = 0.0,
        image_payload: str = "small",
        timeout_fault_s: float = 5.0,
        images_per_minute: float = 0.0,
        shut_down_models: Iterable[str] | str | None = None,
        quota_exhausted: bool = False,
        rate_limit_algorithm: str = "token_bucket",
        refused_calls_count: bool = False,
        rate_limit_per_model: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._address = (host, port)
        limits = AccountLimits(
            images_per_minute, shut_down_models, quota_exhausted, clock, rate_limit_algorithm, refused_calls_count,
            rate_limit_per_model,
        )
        self._state = ServerState(image_latency_s, response_latency_s, image_payload, timeout_fault_s, limits)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    def start(self) -> "LocalOpenAIServer":
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(self._address, handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="local-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LocalOpenAIServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # ---- control
    def configure(self, **settings: Any) -> None:
        """image_latency_s, response_latency_s, timeout_fault_s, image_payload, images_per_minute,
        rate_limit_algorithm ("token_bucket" | "rolling_window"), refused_calls_count, rate_limit_per_model,
        shut_down_models, quota_exhausted. Setting any of the four rate-limit settings frees the whole limit."""
        openai_state.configure(self._state, settings)

    def add_fault(self, *, endpoint: str, match: str, fault: str, times: int | None = None) -> None:
        with self._state.lock:
            self._state.rules.append(FaultRule(endpoint, match, fault, times))

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.rules.clear()

    def reset(self) -> None:
        openai_state.reset(self._state)

    def requests(self, endpoint: str | None = None) -> list[dict]:
        with self._state.lock:
            return [dict(call) for call in self._state.log if endpoint in (None, call["endpoint"])]

    def stats(self) -> dict:
        return openai_state.stats(self._state)


class _Handler(BaseHTTPRequestHandler):
    state: ServerState
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test and dev output quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_local/stats":
            return self._send(200, openai_state.stats(self.state))
        if url.path == "/_local/requests":
            endpoint = parse_qs(url.query).get("endpoint", [None])[0]
            with self.state.lock:
                calls = [call for call in self.state.log if endpoint in (None, call["endpoint"])]
                return self._send(200, calls)
        self._send(404, {"error": {"message": f"no route {url.path}", "type": "invalid_request_error"}})

    def do_DELETE(self) -> None:
        if self.path == "/_local/faults":
            with self.state.lock:
                self.state.rules.clear()
            return self._send(200, {"ok": True})
        self._send(404, {"error": {"message": "no route", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        body = self._json_body()
        path = urlparse(self.path).path
        if path.startswith("/_local/"):
            return self._control(path, body)
        if path not in ROUTES:
            return self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
        endpoint, route = ROUTES[path]
        entry = log_entry(endpoint, path, body, self.headers)
        with self.state.lock:  # logged on arrival: a client may give up (timeout) before we answer
            self.state.log.append(entry)
            self.state.stats["attempts"] += 1
        openai_state.arrived(self.state, endpoint)
        try:
            status, payload, headers = route(self.state, body)
        except ApiError as exc:
            status, payload, headers = exc.status, exc.body, exc.headers
        finally:
            openai_state.left(self.state, endpoint)
        openai_state.record_answer(self.state, endpoint, entry, status, payload)
        self._send(status, payload, headers)

    def _control(self, path: str, body: Any) -> None:
        try:
            if path == "/_local/reset":
                openai_state.reset(self.state)
            elif path == "/_local/config":
                openai_state.configure(self.state, body or {})
            elif path == "/_local/faults":
                rule = FaultRule(body["endpoint"], body.get("match", ""), body["fault"], body.get("times"))
                with self.state.lock:
                    self.state.rules.append(rule)
            else:
                return self._send(404, {"error": {"message": "no route", "type": "invalid_request_error"}})
        except (ValueError, KeyError, TypeError) as exc:
            return self._send(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
        self._send(200, {"ok": True})

    def _json_body(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {}

    def _send(self, status: int, payload: Any, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:24]}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout) before the answer
            self.close_connection = True


# ---------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imageflow local-openai", description=DESCRIPTION)
    add_server_options(parser)
    return serve(parser.parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Run the server with openai_options' options until SIGINT or SIGTERM; prints its base URL first."""
    server = LocalOpenAIServer(
        args.host,
        args.port,
        image_latency_s=args.image_latency,
        response_latency_s=args.response_latency,
        image_payload=args.image_payload,
        images_per_minute=args.images_per_minute,
        shut_down_models=args.shut_down_models,
        quota_exhausted=args.quota_exhausted,
        rate_limit_algorithm=args.rate_limit_algorithm,
        refused_calls_count=args.refused_calls_count,
        rate_limit_per_model=args.rate_limit_per_model,
    ).start()
    print(server.base_url, flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
