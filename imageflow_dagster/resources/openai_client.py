"""OpenAI resource: the official SDK, with the model each call really uses, a shared rate budget, and usage and
cost returned with every call.

dagster-openai only wraps chat/completions/embeddings and fails after a billed Responses/Images call, so this is
our own. Retries are decided in one place, `openai_retry.CallPolicy`; the SDK's own retries are off.
"""

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

import dagster as dg
import openai
from pydantic import BaseModel, Field, PrivateAttr

from imageflow_dagster import lifecycle
from imageflow_dagster.models.pipeline import CallUsage
from imageflow_dagster.resources.image_params import fit_image_params
from imageflow_dagster.resources.openai_retry import CallPolicy, CallStats, QuotaExhausted, RateLimitPatienceExceeded
from imageflow_dagster.resources.openai_usage import images_usage, responses_usage, tool_image_usage
from imageflow_dagster.resources.rate_budget import OpenAIRateBudget
from imageflow_dagster.settings import OPENAI_API_KEY, secret

MARK_CALL = "[OpenAI Client] Making Responses API call"
MARK_RECEIVED = "[OpenAI Client] Received Responses API response"
MARK_IMAGE_CALL = "[OpenAI Client] Found ImageGenerationCall class"
MARK_BASE64 = "[OpenAI Client] Processing base64 image data"
MARK_CONVERTED = "[OpenAI Client] Successfully converted base64 image"

MODERATION_CODES = {"moderation_blocked", "content_policy_violation"}
DEFAULT_OUTPUT_TOKENS = 1024  # the token budget's guess when a call sets no max_output_tokens
_BACKTICKED = re.compile(r"`([^`]+)`")


class OpenAINotConfigured(RuntimeError):
    pass


class ToolImage(BaseModel):
    """One `image_generation_call` item of a Responses answer."""

    b64: str | None
    status: str
    output_format: str | None = None
    error_code: str | None = None
    error_message: str | None = None


class CallOutcome(BaseModel):
    """What any call reports besides its answer: the model used, replacements made, waits and 429s."""

    model: str = ""
    replacements: list[dict[str, str]] = Field(default_factory=list)
    attempts: int = 1
    rate_limited: int = 0
    rate_limit_wait_s: float = 0.0


class ResponseResult(CallOutcome):
    text: str
    status: str | None
    error: str | None = None
    usage: CallUsage
    tool_images: list[ToolImage] = Field(default_factory=list)
    tool_image_usage: CallUsage | None = None
    response_id: str | None = None
    image_model: str | None = None  # the image_generation tool's model, as called
    replayed: bool = False  # answered from the job's response cache, no API call


class ImageResult(CallOutcome):
    b64: str | None
    output_format: str | None
    usage: CallUsage


def api_error_text(exc: openai.OpenAIError) -> str:
    if isinstance(exc, (QuotaExhausted, RateLimitPatienceExceeded)):
        return str(exc)
    status = getattr(exc, "status_code", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"OpenAI error {status}: {message}" if status else f"OpenAI error: {message}"


def is_moderation_block(exc: BaseException) -> bool:
    return isinstance(exc, openai.BadRequestError) and getattr(exc, "code", None) in MODERATION_CODES


def today_utc():
    return datetime.now(timezone.utc).date()


class OpenAIResource(dg.ConfigurableResource):
    """OPENAI_API_KEY for the real API, or `base_url` (OPENAI_BASE_URL) for an OpenAI-compatible server such as
    `imageflow local-openai`. With neither, every call fails with a clear message: there is no silent fallback.

    The key is no field: it is read from the process environment when the client is built (settings.secret), so
    no config, run config or UI page ever holds it. The other fields come from settings.py, which holds their
    defaults (resources/__init__.py builds the resource)."""

    budget: OpenAIRateBudget
    base_url: str | None
    timeout_s: float
    max_retries: int
    rate_limit_wait_s: float
    default_text_model: str
    default_image_model: str
    image_concurrency: int
    max_images_per_step: int
    model_replacements: str  # IMAGEFLOW_MODEL_REPLACEMENTS: lifecycle entries over the shipped table
    strict_response_validation: bool = False  # tests: the SDK checks every answer against its types

    _client: Any = PrivateAttr(default=None)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> openai.OpenAI:
        api_key = secret(OPENAI_API_KEY)
        if not api_key and not self.base_url:
            raise OpenAINotConfigured(
                "OpenAI is not configured: set OPENAI_API_KEY for the OpenAI API, or OPENAI_BASE_URL for an "
                "OpenAI-compatible server (for example `imageflow local-openai`)."
            )
        # An OpenAI-compatible server without auth still needs a non-empty key for the SDK.
        key = api_key or "no-key-needed-for-local-server"
        return _shared_openai_client(key, self.base_url, self.timeout_s, self.strict_response_validation)

    def policy(self) -> CallPolicy:
        return CallPolicy(self.budget, self.max_retries, self.rate_limit_wait_s)

    def model_in_service(self, model: str) -> tuple[str, list[dict[str, str]]]:
        """`model`, or its successor when it is past its shutdown date; with the replacement made, if any."""
        replaced = lifecycle.resolve(model, today_utc(), self.model_replacements)
        return (replaced.used, [replaced.as_dict()]) if replaced else (model, [])

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
        on_wait: Callable[[float], None] | None = None,
    ) -> ResponseResult:
        model, replacements = self.model_in_service(model)
        tools = [dict(t) for t in tools or []]
        image_tool = next((t for t in tools if t.get("type") == "image_generation"), None)
        if image_tool and image_tool.get("model"):
            image_tool["model"], more = self.model_in_service(image_tool["model"])
            replacements += more
        base: dict[str, Any] = {"instructions": instructions, "input": input_text, "store": False}
        if tools:
            base["tools"] = tools
        if tool_choice is not None:
            base["tool_choice"] = tool_choice
        if text_format:
            base["text"] = {"format": text_format}
        if max_output_tokens:
            base["max_output_tokens"] = max_output_tokens
        stats = CallStats()

        def attempt(current: str) -> Any:
            params = {"model": current, **base}
            if reasoning_effort and _is_reasoning_model(current):
                params["reasoning"] = {"effort": reasoning_effort}
            log.info(f"{MARK_CALL} {where} model={current} tools={[t.get('type') for t in tools]}")
            if image_tool:
                budget, units = self.budget.budget("images", image_tool.get("model") or current), 1
            else:
                budget = self.budget.budget("tokens", current)
                units = (len(instructions) + len(input_text)) / 4 + (max_output_tokens or DEFAULT_OUTPUT_TOKENS)
            call = lambda: self.client().responses.with_raw_response.create(**params)  # noqa: E731
            return self.policy().run(call, budget, units, stats, on_wait)

        started = time.monotonic()
        response, model = self._with_successor(model, image_tool, attempt, replacements, log, where)
        latency = time.monotonic() - started
        log.info(f"{MARK_RECEIVED} {where} response_id={response.id} status={response.status} {latency:.2f}s")
        return ResponseResult(
            text=_output_text(response),
            status=response.status,
            error=response.error.message if getattr(response, "error", None) else None,
            usage=responses_usage(model, response, latency),
            tool_images=_tool_images(response, log, where),
            tool_image_usage=tool_image_usage(response, {"tools": tools}),
            response_id=response.id,
            image_model=image_tool.get("model") if image_tool else None,
            **_outcome(model, replacements, stats),
        )

    # ---- Images API
    def generate_image(
        self,
        *,
        model: str,
        prompt: str,
        params: dict[str, Any],
        log: logging.Logger,
        where: str,
        on_wait: Callable[[float], None] | None = None,
    ) -> ImageResult:
        model, replacements = self.model_in_service(model)
        stats = CallStats()

        def attempt(current: str) -> Any:
            fitted = fit_image_params(current, params)
            call = lambda: self.client().images.with_raw_response.generate(  # noqa: E731
                model=current, prompt=prompt, n=1, **fitted
            )
            return self.policy().run(call, self.budget.budget("images", current), 1, stats, on_wait)

        started = time.monotonic()
        result, model = self._with_successor(model, None, attempt, replacements, log, where)
        item = result.data[0] if result.data else None
        return ImageResult(
            b64=item.b64_json if item else None,
            output_format=result.output_format,
            usage=images_usage(model, result.usage, time.monotonic() - started),
            **_outcome(model, replacements, stats),
        )

    def _with_successor(self, model, image_tool, attempt, replacements, log, where) -> tuple[Any, str]:
        """Call; on 404 `model_not_found` try once more with the model's successor, whatever the date."""
        try:
            return attempt(model), model
        except openai.NotFoundError as exc:
            if getattr(exc, "code", None) != "model_not_found":
                raise
            gone = _missing_model(exc, model, image_tool)
            replaced = lifecycle.after_not_found(gone, today_utc(), self.model_replacements)
        log.warning(f"{where} {replaced.reason}; trying {replaced.used}")
        replacements.append(replaced.as_dict())
        if image_tool is not None and gone == image_tool.get("model"):
            image_tool["model"] = replaced.used
            return attempt(model), model
        return attempt(replaced.used), replaced.used


@lru_cache(maxsize=8)
def _shared_openai_client(api_key: str, base_url: str | None, timeout_s: float, strict: bool) -> openai.OpenAI:
    """One client (and connection pool) per configuration and process; the SDK client is thread-safe. Its own
    retries are off: `CallPolicy` is the one place that retries."""
    return openai.OpenAI(
        api_key=api_key,
        base_url=base_url,
        timeout=openai.Timeout(timeout_s, connect=10.0),
        max_retries=0,
        _strict_response_validation=strict,
    )


def _outcome(model: str, replacements: list[dict[str, str]], stats: CallStats) -> dict[str, Any]:
    return {
        "model": model,
        "replacements": replacements,
        "attempts": stats.attempts,
        "rate_limited": stats.rate_limited,
        "rate_limit_wait_s": stats.waited_s,
    }


def _missing_model(exc: openai.NotFoundError, model: str, image_tool: dict | None) -> str:
    """Which model the 404 is about: OpenAI names it in backticks; else the mainline model."""
    named = _BACKTICKED.findall(getattr(exc, "message", "") or str(exc))
    tool_model = (image_tool or {}).get("model")
    if tool_model and tool_model in named and model not in named:
        return tool_model
    return model


def _is_reasoning_model(model: str) -> bool:
    return model.startswith(("gpt-5", "o1", "o3", "o4"))


def _output_text(response) -> str:
    try:
        return response.output_text or ""
    except TypeError:  # a message item without content: treat as empty, the caller reports it
        return ""


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
