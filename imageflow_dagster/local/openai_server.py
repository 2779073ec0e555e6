"""imageflow's own OpenAI-compatible server: the offline backend of `imageflow dev`, the tests' double and the
benchmarks' latency and fault injector.

It answers `POST /v1/images/generations` and `POST /v1/responses` with bodies that pass the official SDK's strict
response validation, real PNG/JPEG/WebP bytes of the requested size, and usage. Faults are chosen per request by
markers in the prompt (`[[img-fault:NAME]]` for images, `[[resp-fault:NAME]]` for planner/text calls; `NAME` may
end in `xK`: only the first K identical requests fail) or by rules added through the Python or HTTP control API.
Planner answers are shaped by `[[images:N]]`, `[[plan:fenced|prose|empty|garbage|blank-prompts]]`, and
`[[imageK:X]]` appends `[[X]]` to the K-th planned prompt.
"""

import argparse
import base64
import io
import json
import random
import re
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from PIL import Image, ImageDraw

IMAGE_MODEL_PREFIXES = ("gpt-image-", "chatgpt-image-latest")
OUTPUT_TOKENS = {  # per image, gpt-image-1 family (quality -> square, portrait, landscape)
    "low": (272, 408, 400),
    "medium": (1056, 1584, 1568),
    "high": (4160, 6240, 6208),
}
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}
MARKER = re.compile(r"\[\[[^\[\]]*\]\]")
FAULTS = ("429", "500", "timeout", "moderation", "invalid_base64", "not_image", "wrong_format", "status_failed")


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, kind: str = "invalid_request_error", **extra):
        super().__init__(message)
        self.status, self.body = status, {"error": {"message": message, "type": kind, "param": None, "code": code, **extra}}


@dataclass
class FaultRule:
    endpoint: str
    match: str
    fault: str
    times: int | None = None
    used: int = 0


@dataclass
class _State:
    image_latency_s: float = 0.0
    response_latency_s: float = 0.0
    image_payload: str = "small"
    timeout_fault_s: float = 5.0
    rules: list[FaultRule] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)
    counted_markers: Counter = field(default_factory=Counter)
    stats: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


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
    ):
        self._address = (host, port)
        self._state = _State(image_latency_s, response_latency_s, image_payload, timeout_fault_s)
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
        _configure(self._state, settings)

    def add_fault(self, *, endpoint: str, match: str, fault: str, times: int | None = None) -> None:
        with self._state.lock:
            self._state.rules.append(FaultRule(endpoint, match, fault, times))

    def clear_faults(self) -> None:
        with self._state.lock:
            self._state.rules.clear()

    def reset(self) -> None:
        _reset(self._state)

    def requests(self, endpoint: str | None = None) -> list[dict]:
        with self._state.lock:
            return [dict(r) for r in self._state.log if endpoint in (None, r["endpoint"])]

    def stats(self) -> dict:
        return _stats(self._state)


def _configure(state: _State, settings: dict) -> None:
    allowed = {"image_latency_s", "response_latency_s", "image_payload", "timeout_fault_s"}
    unknown = set(settings) - allowed
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    with state.lock:
        for name, value in settings.items():
            setattr(state, name, value if name == "image_payload" else float(value))


def _reset(state: _State) -> None:
    with state.lock:
        state.rules.clear()
        state.log.clear()
        state.counted_markers.clear()
        state.stats.clear()
        state.faults.clear()


def _stats(state: _State) -> dict:
    with state.lock:
        return {
            "images": state.stats["images"],
            "responses": state.stats["responses"],
            "attempts": state.stats["attempts"],
            "faults": dict(state.faults),
        }


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test and dev output quiet
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/_local/stats":
            return self._send(200, _stats(self.state))
        if url.path == "/_local/requests":
            endpoint = parse_qs(url.query).get("endpoint", [None])[0]
            with self.state.lock:
                return self._send(200, [r for r in self.state.log if endpoint in (None, r["endpoint"])])
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
        routes = {"/v1/images/generations": _images, "/v1/responses": _responses}
        if path not in routes:
            return self._send(404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}})
        endpoint = "images" if path.endswith("generations") else "responses"
        entry = _log_entry(endpoint, path, body, self.headers)
        with self.state.lock:  # logged on arrival: a client may give up (timeout) before we answer
            self.state.log.append(entry)
            self.state.stats["attempts"] += 1
        try:
            status, payload, headers = routes[path](self.state, body)
        except ApiError as exc:
            status, payload, headers = exc.status, exc.body, getattr(exc, "headers", {})
        with self.state.lock:
            entry["status"] = status
            if status == 200:
                self.state.stats[endpoint] += 1
        self._send(status, payload, headers)

    def _control(self, path: str, body: Any) -> None:
        if path == "/_local/reset":
            _reset(self.state)
        elif path == "/_local/config":
            _configure(self.state, body or {})
        elif path == "/_local/faults":
            with self.state.lock:
                self.state.rules.append(FaultRule(body["endpoint"], body.get("match", ""), body["fault"], body.get("times")))
        else:
            return self._send(404, {"error": {"message": "no route", "type": "invalid_request_error"}})
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
        self.wfile.write(data)


def _log_entry(endpoint: str, path: str, body: dict, headers) -> dict:
    text_fields = ("prompt",) if endpoint == "images" else ("input", "instructions")
    entry = {
        "endpoint": endpoint,
        "path": path,
        "model": body.get("model"),
        "body_keys": sorted(body),
        "params": {k: v for k, v in body.items() if k not in text_fields},
        "retry_count": int(headers.get("x-stainless-retry-count") or 0),
        "authorization_present": bool(headers.get("authorization")),
        "at": time.time(),
    }
    if endpoint == "images":
        entry["prompt"] = str(body.get("prompt", ""))
    else:
        entry["input"] = _flatten_input(body.get("input"))[:2000]
    return entry


# ---------------------------------------------------------------- faults
def _pick_fault(state: _State, endpoint: str, text: str, marker_prefix: str) -> str | None:
    for match in re.finditer(re.escape(f"[[{marker_prefix}:") + r"([a-z_0-9]+?)(?:x(\d+))?\]\]", text):
        name, limit = match.group(1), match.group(2)
        if limit is None:
            return name
        with state.lock:
            key = (endpoint, text, name)
            if state.counted_markers[key] < int(limit):
                state.counted_markers[key] += 1
                return name
    with state.lock:
        for rule in state.rules:
            if rule.endpoint in (endpoint, "any") and rule.match in text and (rule.times is None or rule.used < rule.times):
                rule.used += 1
                return rule.fault
    return None


def _count_fault(state: _State, fault: str) -> None:
    with state.lock:
        state.faults[fault] += 1


def _raise_transport_faults(state: _State, fault: str | None) -> None:
    """Faults that replace the answer with an HTTP error, or delay it."""
    if fault == "429":
        error = ApiError(429, "Rate limit reached for requests. Please try again in 50ms.", "rate_limit_exceeded", "requests")
        error.headers = {"retry-after-ms": "50", "retry-after": "0.05"}
        raise error
    if fault == "500":
        raise ApiError(500, "The server had an error while processing your request.", "server_error", "server_error")
    if fault == "timeout":
        time.sleep(state.timeout_fault_s)


# ---------------------------------------------------------------- images
def _images(state: _State, body: dict) -> tuple[int, dict, dict]:
    prompt = _validate_images_request(body)
    fault = _pick_fault(state, "images", prompt, "img-fault")
    if fault:
        _count_fault(state, fault)
    time.sleep(state.image_latency_s)
    _raise_transport_faults(state, fault)
    if fault == "moderation":
        raise ApiError(
            400,
            "Your request was rejected by the safety system. safety_violations=[violence].",
            "moderation_blocked",
            "image_generation_user_error",
            moderation_details={"moderation_stage": "input", "categories": ["violence"]},
        )
    fmt = body.get("output_format") or "png"
    width, height = _size(body.get("size"))
    quality = "medium" if body.get("quality") in (None, "auto") else body["quality"]
    background = "transparent" if body.get("background") == "transparent" else "opaque"
    n = int(body.get("n") or 1)
    data = [{"b64_json": _b64_payload(state, fault, fmt, width, height, background)} for _ in range(n)]
    out_tokens = _image_tokens(quality, width, height) * n
    in_tokens = max(1, len(prompt.split()))
    return 200, {
        "created": int(time.time()),
        "background": background,
        "data": data,
        "output_format": fmt,
        "quality": quality,
        "size": f"{width}x{height}",
        "usage": {
            "input_tokens": in_tokens,
            "input_tokens_details": {"text_tokens": in_tokens, "image_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"image_tokens": out_tokens, "text_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        },
    }, {}


def _validate_images_request(body: dict) -> str:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ApiError(400, "Missing required parameter: 'prompt'.")
    if len(prompt) > 32000:
        raise ApiError(400, "Invalid 'prompt': string too long. Expected a string with maximum length 32000.")
    if "response_format" in body:
        raise ApiError(400, "Unknown parameter: 'response_format'.", "unknown_parameter")
    model = str(body.get("model") or "")
    if not model.startswith(IMAGE_MODEL_PREFIXES):
        raise ApiError(404, f"The model '{model}' does not exist or you do not have access to it.", "model_not_found")
    n = body.get("n", 1)
    if not isinstance(n, int) or not 1 <= n <= 10:
        raise ApiError(400, "Invalid 'n': must be between 1 and 10.")
    fmt = body.get("output_format") or "png"
    if fmt not in PIL_FORMATS:
        raise ApiError(400, f"Invalid 'output_format': {fmt!r}.")
    if body.get("background") == "transparent" and fmt == "jpeg":
        raise ApiError(400, "Transparent background requires output_format png or webp.")
    if "output_compression" in body:
        compression = body["output_compression"]
        if fmt == "png":
            raise ApiError(400, "output_compression is only supported for jpeg and webp.")
        if not isinstance(compression, int) or isinstance(compression, bool) or not 0 <= compression <= 100:
            raise ApiError(400, "Invalid 'output_compression': expected an integer between 0 and 100.")
    _size(body.get("size"))
    return prompt


def _size(size: Any) -> tuple[int, int]:
    if size in (None, "auto"):
        return 1024, 1024
    match = re.fullmatch(r"(\d{2,4})x(\d{2,4})", str(size))
    if not match:
        raise ApiError(400, f"Invalid 'size': {size!r}.")
    return int(match.group(1)), int(match.group(2))


def _image_tokens(quality: str, width: int, height: int) -> int:
    square, portrait, landscape = OUTPUT_TOKENS.get(quality, OUTPUT_TOKENS["medium"])
    table = {(1024, 1024): square, (1024, 1536): portrait, (1536, 1024): landscape}
    return table.get((width, height), round(square * width * height / (1024 * 1024)))


def _b64_payload(state: _State, fault: str | None, fmt: str, width: int, height: int, background: str) -> str:
    if fault == "invalid_base64":
        return "@@not-base64@@"
    if fault == "not_image":
        return base64.b64encode(b"hello, this is not an image").decode()
    if fault == "wrong_format":
        fmt = "jpeg" if fmt == "png" else "png"
    return _encoded_image(fmt, width, height, background, state.image_payload)


@lru_cache(maxsize=64)
def _encoded_image(fmt: str, width: int, height: int, background: str, payload: str) -> str:
    mode = "RGBA" if background == "transparent" and fmt in ("png", "webp") else "RGB"
    if payload == "noise":
        image = Image.frombytes("RGB", (width, height), random.randbytes(width * height * 3)).convert(mode)
    else:
        image = Image.new(mode, (width, height), (40, 90, 160, 0) if mode == "RGBA" else (40, 90, 160))
        draw = ImageDraw.Draw(image)
        draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(240, 180, 60))
        draw.rectangle((0, height - height // 8, width, height), fill=(20, 20, 30))
        draw.text((16, height - height // 10), "imageflow local", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, PIL_FORMATS[fmt])
    return base64.b64encode(out.getvalue()).decode()


# ---------------------------------------------------------------- responses
def _responses(state: _State, body: dict) -> tuple[int, dict, dict]:
    text = _flatten_input(body.get("input"))
    instructions = str(body.get("instructions") or "")
    tools = body.get("tools") or []
    image_tool = next((t for t in tools if isinstance(t, dict) and t.get("type") == "image_generation"), None)
    marker_prefix = "img-fault" if image_tool else "resp-fault"
    fault = _pick_fault(state, "responses", f"{instructions}\n{text}", marker_prefix)
    if fault:
        _count_fault(state, fault)
    time.sleep(state.response_latency_s)
    _raise_transport_faults(state, fault)
    output: list[dict] = [{"id": f"rs_{uuid.uuid4().hex[:16]}", "type": "reasoning", "summary": []}]
    tool_usage = None
    if fault == "status_failed":
        return 200, _response_body(body, output, "failed", {"code": "server_error", "message": "The model failed"}), {}
    if image_tool:
        call, tool_usage = _image_call(state, image_tool, text, fault)
        output.append(call)
        message = "Here is your image."
    elif _is_planner(body, instructions):
        message = _plan_text(text)
    else:
        message = _report_text(text)
    output.append(
        {
            "id": f"msg_{uuid.uuid4().hex[:16]}",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": message, "annotations": []}],
        }
    )
    return 200, _response_body(body, output, "completed", None, text, message, tool_usage), {}


def _is_planner(body: dict, instructions: str) -> bool:
    fmt = ((body.get("text") or {}).get("format") or {}).get("type")
    return fmt == "json_schema" or "JSON" in instructions


def _image_call(state: _State, tool: dict, text: str, fault: str | None) -> tuple[dict, dict]:
    fmt = tool.get("output_format") or "png"
    width, height = _size(tool.get("size"))
    quality = "medium" if tool.get("quality") in (None, "auto") else tool["quality"]
    background = "transparent" if tool.get("background") == "transparent" else "opaque"
    call = {
        "id": f"ig_{uuid.uuid4().hex[:16]}",
        "type": "image_generation_call",
        "status": "completed",
        "result": _b64_payload(state, fault, fmt, width, height, background),
        "revised_prompt": _strip_markers(text)[:200],
        "action": "generate",
        "background": background,
        "output_format": fmt,
        "quality": quality,
        "size": f"{width}x{height}",
    }
    if fault == "moderation":
        call.update(
            status="failed",
            result=None,
            error={"code": "moderation_blocked", "message": "Rejected by the safety system.", "type": "image_generation_user_error"},
        )
    out_tokens = _image_tokens(quality, width, height)
    in_tokens = max(1, len(text.split()) // 4)
    usage = {
        "input_tokens": in_tokens,
        "input_tokens_details": {"text_tokens": in_tokens, "image_tokens": 0},
        "output_tokens": out_tokens,
        "total_tokens": in_tokens + out_tokens,
    }
    return call, usage


def _plan_text(text: str) -> str:
    subject = _subject(text)
    count = _plan_count(text)
    excerpt = _strip_markers(text)[:300].strip()
    injections = {int(k): v for k, v in re.findall(r"\[\[image(\d+):([^\[\]]+)\]\]", text)}
    images = []
    for i in range(1, count + 1):
        prompt = f"{subject} image {i} of {count}: {excerpt}"
        if i in injections:
            prompt += f" [[{injections[i]}]]"
        images.append({"label": f"{subject} {i}", "prompt": prompt})
    if "[[plan:blank-prompts]]" in text:
        images = [images[0]] + [{"prompt": "   "} for _ in images[1:]]
        if len(images) > 1:
            images[1] = {"prompt": images[1]["prompt"]}
    if "[[plan:empty]]" in text:
        images = []
    plan = json.dumps({"images": images})
    if "[[plan:garbage]]" in text:
        return "I cannot produce JSON today."
    if "[[plan:fenced]]" in text:
        return f"```json\n{plan}\n```"
    if "[[plan:prose]]" in text:
        return f"Here is the plan:\n{plan}\nHope this helps."
    return plan


def _plan_count(text: str) -> int:
    marker = re.search(r"\[\[images:(\d+)\]\]", text)
    if marker:
        return int(marker.group(1))
    spoken = re.search(r"(\d+)\s+(?:[a-z-]+\s+){0,2}(?:images?|pictures?|visuals?)\b", _strip_markers(text), re.IGNORECASE)
    return int(spoken.group(1)) if spoken else 2


def _subject(text: str) -> str:
    match = re.search(r"^Step Name:\s*(.+)$", text, re.IGNORECASE | re.MULTILINE)
    return _strip_markers(match.group(1)).strip() if match else "Image"


def _report_text(text: str) -> str:
    excerpt = " ".join(_strip_markers(text).split())[:240]
    if "[[text:html]]" in text:
        return f"<!DOCTYPE html><html><body><h1>{_subject(text)}</h1><p>{excerpt}</p></body></html>"
    if "[[text:json]]" in text:
        return json.dumps({"subject": _subject(text), "summary": excerpt})
    return f"# {_subject(text)}\n\nA short report written from the context: {excerpt}\n\nIt closes with next steps."


def _response_body(body, output, status, error, text: str = "", message: str = "", tool_usage=None) -> dict:
    in_tokens = max(1, len(f"{body.get('instructions') or ''} {text}".split()))
    out_tokens = max(1, len(message.split()))
    response = {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "completed_at": int(time.time()),
        "status": status,
        "model": body.get("model") or "gpt-5.2",
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "error": error,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": body.get("text") or {"format": {"type": "text"}},
        "output": output,
        "usage": {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        },
    }
    if tool_usage:
        response["tool_usage"] = {"image_gen": tool_usage, "web_search": {"num_requests": 0}}
    return response


def _flatten_input(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_flatten_input(item) for item in value)
    if isinstance(value, dict):
        if "text" in value:
            return str(value["text"])
        return _flatten_input(value.get("content"))
    return ""


def _strip_markers(text: str) -> str:
    return MARKER.sub("", text)


# ---------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imageflow local-openai", description="Run the local OpenAI-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--image-latency", type=float, default=0.0, help="seconds added to every image call")
    parser.add_argument("--response-latency", type=float, default=0.0, help="seconds added to every Responses call")
    parser.add_argument("--image-payload", choices=("small", "noise"), default="small")
    args = parser.parse_args(argv)
    server = LocalOpenAIServer(
        args.host,
        args.port,
        image_latency_s=args.image_latency,
        response_latency_s=args.response_latency,
        image_payload=args.image_payload,
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
