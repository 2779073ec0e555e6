"""The two API routes of the local OpenAI server, `POST /v1/images/generations` and `POST /v1/responses`, and the
faults injected into them.

Order of checks on every call, as the real API answers them: quota (429 insufficient_quota), shut-down models (404),
request validation (400/404), then the images-per-minute limit (429 rate_limit_exceeded; image calls only, taken
on arrival), then injected faults and simulated latency. Each returns (status, body, headers) or raises ApiError.
"""

import hashlib
import re
import time
import uuid

from imageflow_dagster.local.openai_errors import ApiError
from imageflow_dagster.local.openai_media import b64_payload, image_tokens
from imageflow_dagster.local.openai_state import ServerState
from imageflow_dagster.local.openai_text import flatten_input, is_planner, plan_text, report_text, strip_markers
from imageflow_dagster.local.openai_validation import (
    DEFAULT_TOOL_IMAGE_MODEL,
    validate_images_request,
    validate_size_and_quality,
)

FAULTS = ("429", "500", "timeout", "moderation", "invalid_base64", "not_image", "wrong_format", "status_failed")


def log_entry(endpoint: str, path: str, body: dict, headers) -> dict:
    text_fields = ("prompt",) if endpoint == "images" else ("input", "instructions")
    entry = {
        "endpoint": endpoint,
        "path": path,
        "model": body.get("model"),
        "body_keys": sorted(body),
        "params": {k: v for k, v in body.items() if k not in text_fields},
        "retry_count": int(headers.get("x-stainless-retry-count") or 0),
        "authorization_present": bool(headers.get("authorization")),
        # A hash, never the key: tests prove which key was sent without the log holding a secret.
        "authorization_sha256": _sha256(headers.get("authorization")),
        "at": time.time(),
    }
    if endpoint == "images":
        entry["prompt"] = str(body.get("prompt", ""))
    else:
        entry["input"] = flatten_input(body.get("input"))[:2000]
    return entry


def _sha256(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest() if value else None


# ---------------------------------------------------------------- faults
def _pick_fault(state: ServerState, endpoint: str, text: str, marker_prefix: str) -> str | None:
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


def _count_fault(state: ServerState, fault: str | None) -> None:
    if fault:
        with state.lock:
            state.faults[fault] += 1


def _raise_transport_faults(state: ServerState, fault: str | None) -> None:
    """Faults that replace the answer with an HTTP error, or delay it."""
    if fault == "429":
        headers = {"retry-after-ms": "50", "retry-after": "0.05"}
        message = "Rate limit reached for requests. Please try again in 50ms."
        raise ApiError(429, message, "rate_limit_exceeded", "requests", headers=headers)
    if fault == "500":
        raise ApiError(500, "The server had an error while processing your request.", "server_error", "server_error")
    if fault == "timeout":
        time.sleep(state.timeout_fault_s)


def _with_headers(headers: dict[str, str], answer):
    """Runs `answer()`, adding `headers` (the x-ratelimit ones) to its result or to the error it raises."""
    try:
        status, body, own = answer()
    except ApiError as exc:
        exc.headers = {**headers, **exc.headers}
        raise
    return status, body, {**headers, **own}


# ---------------------------------------------------------------- images
def images(state: ServerState, body: dict) -> tuple[int, dict, dict]:
    state.limits.check_quota()
    state.limits.check_model(body.get("model"))
    prompt = validate_images_request(body)
    n = int(body.get("n") or 1)
    limit_headers = state.limits.take_images(str(body["model"]), n)
    return _with_headers(limit_headers, lambda: _generate_images(state, body, prompt, n))


def _generate_images(state: ServerState, body: dict, prompt: str, n: int) -> tuple[int, dict, dict]:
    fault = _pick_fault(state, "images", prompt, "img-fault")
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
    width, height = validate_size_and_quality(str(body["model"]), body.get("size"), body.get("quality"))
    quality = "medium" if body.get("quality") in (None, "auto") else body["quality"]
    background = "transparent" if body.get("background") == "transparent" else "opaque"
    data = [{"b64_json": b64_payload(state.image_payload, fault, fmt, width, height, background)} for _ in range(n)]
    out_tokens = image_tokens(quality, width, height) * n
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


# ---------------------------------------------------------------- responses
def responses(state: ServerState, body: dict) -> tuple[int, dict, dict]:
    state.limits.check_quota()
    tools = body.get("tools") or []
    image_tool = next((t for t in tools if isinstance(t, dict) and t.get("type") == "image_generation"), None)
    state.limits.check_model(body.get("model"))
    if image_tool is None:
        return _answer(state, body, None)
    tool_model = str(image_tool.get("model") or DEFAULT_TOOL_IMAGE_MODEL)
    state.limits.check_model(tool_model)
    validate_size_and_quality(tool_model, image_tool.get("size"), image_tool.get("quality"))
    limit_headers = state.limits.take_images(tool_model, 1)
    return _with_headers(limit_headers, lambda: _answer(state, body, image_tool))


def _answer(state: ServerState, body: dict, image_tool: dict | None) -> tuple[int, dict, dict]:
    text = flatten_input(body.get("input"))
    instructions = str(body.get("instructions") or "")
    marker_prefix = "img-fault" if image_tool else "resp-fault"
    fault = _pick_fault(state, "responses", f"{instructions}\n{text}", marker_prefix)
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
    elif is_planner(body, instructions):
        message = plan_text(text)
    else:
        message = report_text(text)
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


def _image_call(state: ServerState, tool: dict, text: str, fault: str | None) -> tuple[dict, dict]:
    fmt = tool.get("output_format") or "png"
    tool_model = str(tool.get("model") or DEFAULT_TOOL_IMAGE_MODEL)
    width, height = validate_size_and_quality(tool_model, tool.get("size"), tool.get("quality"))
    quality = "medium" if tool.get("quality") in (None, "auto") else tool["quality"]
    background = "transparent" if tool.get("background") == "transparent" else "opaque"
    call = {
        "id": f"ig_{uuid.uuid4().hex[:16]}",
        "type": "image_generation_call",
        "status": "completed",
        "result": b64_payload(state.image_payload, fault, fmt, width, height, background),
        "revised_prompt": strip_markers(text)[:200],
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
    out_tokens = image_tokens(quality, width, height)
    in_tokens = max(1, len(text.split()) // 4)
    usage = {
        "input_tokens": in_tokens,
        "input_tokens_details": {"text_tokens": in_tokens, "image_tokens": 0},
        "output_tokens": out_tokens,
        "total_tokens": in_tokens + out_tokens,
    }
    return call, usage


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
