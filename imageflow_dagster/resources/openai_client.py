"""OpenAI resource: the official SDK with our timeouts and retries, returning usage and cost with every call.

dagster-openai only wraps chat/completions/embeddings and fails after a billed Responses/Images call, so this is
our own. The SDK already retries connection errors, timeouts, 408/409/429/5xx and honours Retry-After; nothing
here retries on top of it.
"""

import logging
import threading
import time
from functools import lru_cache
from typing import Any

import dagster as dg
import openai
from pydantic import BaseModel, Field, PrivateAttr

from imageflow_dagster import pricing
from imageflow_dagster.models.pipeline import CallUsage

MARK_CALL = "[OpenAI Client] Making Responses API call"
MARK_RECEIVED = "[OpenAI Client] Received Responses API response"
MARK_IMAGE_CALL = "[OpenAI Client] Found ImageGenerationCall class"
MARK_BASE64 = "[OpenAI Client] Processing base64 image data"
MARK_CONVERTED = "[OpenAI Client] Successfully converted base64 image"

MODERATION_CODES = {"moderation_blocked", "content_policy_violation"}


class OpenAINotConfigured(RuntimeError):
    pass


class ToolImage(BaseModel):
    """One `image_generation_call` item of a Responses answer."""

    b64: str | None
    status: str
    output_format: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class ResponseResult(BaseModel):
    text: str
    status: str | None
    error: str | None = None
    usage: CallUsage
    tool_images: list[ToolImage] = Field(default_factory=list)
    tool_image_usage: CallUsage | None = None
    response_id: str | None = None
    replayed: bool = False  # answered from the job's response cache, no API call


class ImageResult(BaseModel):
    b64: str | None
    output_format: str | None
    usage: CallUsage
    attempts: int


def api_error_text(exc: openai.OpenAIError) -> str:
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"OpenAI error {status}: {message}" if status else f"OpenAI error: {message}"


def is_moderation_block(exc: BaseException) -> bool:
    return isinstance(exc, openai.BadRequestError) and getattr(exc, "code", None) in MODERATION_CODES


class OpenAIResource(dg.ConfigurableResource):
    """Set `api_key` for the real API, or `base_url` for an OpenAI-compatible server such as `imageflow
    local-openai`. With neither, every call fails with a clear message: there is no silent fallback."""

    api_key: str | None = None
    base_url: str | None = None
    timeout_s: float = 600.0
    max_retries: int = 2
    default_text_model: str = "gpt-5.2"
    default_image_model: str = "gpt-image-1.5"
    image_concurrency: int = 8
    max_images_per_step: int = 12
    strict_response_validation: bool = False

    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> openai.OpenAI:
        if not self.api_key and not self.base_url:
            raise OpenAINotConfigured(
                "OpenAI is not configured: set OPENAI_API_KEY for the OpenAI API, or OPENAI_BASE_URL for an "
                "OpenAI-compatible server (for example `imageflow local-openai`)."
            )
        # An OpenAI-compatible server without auth still needs a non-empty key for the SDK.
        key = self.api_key or "no-key-needed-for-local-server"
        return _shared_openai_client(key, self.base_url, self.timeout_s, self.max_retries, self.strict_response_validation)

    # ---- Responses API
    def respond(
        self,
        *,
        model: str,
        instructions: str,
        input_text: str,
        log: logging.Logger,
        where: str,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        text_format: dict[str, Any] | None = None,
        reasoning_effort: str | None = None,
        max_output_tokens: int | None = None,
    ) -> ResponseResult:
        params: dict[str, Any] = {"model": model, "instructions": instructions, "input": input_text, "store": False}
        if tools:
            params["tools"] = tools
        if tool_choice is not None:
            params["tool_choice"] = tool_choice
        if text_format:
            params["text"] = {"format": text_format}
        if reasoning_effort and _is_reasoning_model(model):
            params["reasoning"] = {"effort": reasoning_effort}
        if max_output_tokens:
            params["max_output_tokens"] = max_output_tokens
        log.info(f"{MARK_CALL} {where} model={model} tools={[t.get('type') for t in tools or []]}")
        started = time.monotonic()
        response = self.client().responses.create(**params)
        latency = time.monotonic() - started
        log.info(f"{MARK_RECEIVED} {where} response_id={response.id} status={response.status} {latency:.2f}s")
        return ResponseResult(
            text=_output_text(response),
            status=response.status,
            error=response.error.message if getattr(response, "error", None) else None,
            usage=_responses_usage(model, response, latency),
            tool_images=_tool_images(response, log, where),
            tool_image_usage=_tool_image_usage(response, params),
            response_id=response.id,
        )

    # ---- Images API
    def generate_image(self, *, model: str, prompt: str, params: dict[str, Any]) -> ImageResult:
        started = time.monotonic()
        raw = self.client().images.with_raw_response.generate(model=model, prompt=prompt, n=1, **params)
        result = raw.parse()
        latency = time.monotonic() - started
        item = result.data[0] if result.data else None
        return ImageResult(
            b64=item.b64_json if item else None,
            output_format=result.output_format,
            usage=_images_usage(model, result.usage, latency),
            attempts=raw.retries_taken + 1,
        )


@lru_cache(maxsize=8)
def _shared_openai_client(
    api_key: str, base_url: str | None, timeout_s: float, max_retries: int, strict: bool
) -> openai.OpenAI:
    """One client (and connection pool) per configuration and process; the SDK client is thread-safe."""
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=openai.Timeout(timeout_s, connect=10.0),
        max_retries=max_retries,
        _strict_response_validation=strict,
    )


def _is_reasoning_model(model: str) -> bool:
    return model.startswith(("gpt-5", "o1", "o3", "o4"))


def _output_text(response) -> str:
    try:
        return response.output_text or ""
    except TypeError:  # a message item without content: treat as empty, the caller reports it
        return ""


def _responses_usage(model: str, response, latency: float) -> CallUsage:
    usage = getattr(response, "usage", None)
    input_tokens = int(getattr(usage, "input_tokens", 0) or 0)
    output_tokens = int(getattr(usage, "output_tokens", 0) or 0)
    return CallUsage(
        model=model,
        calls=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=pricing.text_cost(model, input_tokens, output_tokens),
        latency_s=round(latency, 3),
    )


def _images_usage(model: str, usage, latency: float) -> CallUsage:
    if usage is None:  # some proxies omit usage; cost stays 0 and is visible as such
        return CallUsage(model=model, calls=1, latency_s=round(latency, 3))
    details = getattr(usage, "input_tokens_details", None)
    text_in = int(getattr(details, "text_tokens", usage.input_tokens) or 0)
    image_in = int(getattr(details, "image_tokens", 0) or 0)
    out_details = getattr(usage, "output_tokens_details", None)
    text_out = int(getattr(out_details, "text_tokens", 0) or 0) if out_details else 0
    image_out = int(usage.output_tokens) - text_out
    return CallUsage(
        model=model,
        calls=1,
        input_tokens=int(usage.input_tokens),
        output_tokens=int(usage.output_tokens),
        cost_usd=pricing.image_cost(model, text_in, image_in, image_out, text_out),
        latency_s=round(latency, 3),
    )


def _tool_images(response, log: logging.Logger, where: str) -> list[ToolImage]:
    images = []
    for item in response.output or []:
        if getattr(item, "type", None) != "image_generation_call":
            continue
        log.info(f"{MARK_IMAGE_CALL} {where} item={getattr(item, 'id', '?')} status={item.status}")
        error = getattr(item, "error", None)
        images.append(
            ToolImage(
                b64=item.result,
                status=item.status,
                output_format=getattr(item, "output_format", None),
                error_code=getattr(error, "code", None) if error else None,
                error_message=getattr(error, "message", None) if error else None,
            )
        )
    return images


def _tool_image_usage(response, params: dict[str, Any]) -> CallUsage | None:
    tool_usage = getattr(response, "tool_usage", None)
    image_gen = getattr(tool_usage, "image_gen", None) if tool_usage else None
    if image_gen is None:
        return None
    tool = next((t for t in params.get("tools", []) if t.get("type") == "image_generation"), {})
    model = tool.get("model") or "default"
    details = getattr(image_gen, "input_tokens_details", None)
    text_in = int(getattr(details, "text_tokens", image_gen.input_tokens) or 0)
    image_in = int(getattr(details, "image_tokens", 0) or 0)
    return CallUsage(
        model=model,
        calls=0,
        input_tokens=int(image_gen.input_tokens),
        output_tokens=int(image_gen.output_tokens),
        cost_usd=pricing.image_cost(model, text_in, image_in, int(image_gen.output_tokens)),
    )
