"""The generation phase: every planned image of the job, rendered concurrently and stored as it arrives.

Bytes go to S3 the moment they are validated (create-only, under the request-derived key): nothing paid for is
held back, memory stays bounded by the concurrency window, and a rerun finds the object and skips the call.
"""

import logging
import time
from dataclasses import dataclass

import openai

from imageflow_dagster.flow.image_data import CONTENT_TYPES, InvalidImageData, decode_base64, read_image
from imageflow_dagster.flow.live_artifacts import LiveArtifacts, image_object
from imageflow_dagster.flow.parallel import parallel_map
from imageflow_dagster.lifecycle import ModelRetired
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.thumbnails import CONTENT_TYPE as THUMBNAIL_TYPE
from imageflow_dagster.flow.thumbnails import make_thumbnail, thumbnail_key
from imageflow_dagster.models.pipeline import CallUsage, GeneratedImage, ImageRequest, JobPlan
from imageflow_dagster.resources.image_params import ImageConfigError
from imageflow_dagster.resources.openai_client import (
    MARK_BASE64,
    MARK_CONVERTED,
    MODERATION_CODES,
    CallOutcome,
    OpenAIResource,
    api_error_text,
    is_moderation_block,
)
from imageflow_dagster.resources.s3 import ImageflowS3Resource


@dataclass
class GenerationTools:
    openai: OpenAIResource
    s3: ImageflowS3Resource
    progress: LiveProgress
    log: logging.Logger
    artifacts: LiveArtifacts | None = None  # writes each image's artifact row as its bytes land


class _Blocked(Exception):
    pass


def generate_images(plan: JobPlan, tools: GenerationTools) -> list[GeneratedImage]:
    requests = plan.image_requests
    if not requests:
        return []
    totals = {s.index: len(s.image_requests) for s in plan.steps}
    names = {s.index: s.name for s in plan.steps}

    def render(request: ImageRequest) -> GeneratedImage:
        return _generate_one(plan, request, totals[request.step_index], names[request.step_index], tools)

    return parallel_map(render, requests, workers=tools.openai.image_concurrency, name="imageflow-image")


def _generate_one(plan: JobPlan, request: ImageRequest, total: int, step_name: str, tools: GenerationTools) -> GeneratedImage:
    where = f"job={plan.job.job_id} step={request.step_index + 1} ({step_name}) image={request.index}/{total} ({request.label})"
    number = request.step_index + 1
    existing = tools.s3.head(request.key)
    if existing is not None:
        tools.log.info(f"reusing stored image {where} key={request.key}")
        return GeneratedImage(
            request=request,
            outcome="reused",
            content_type=existing.get("ContentType"),
            size_bytes=int(existing.get("ContentLength", 0)),
            thumbnail_url=_thumbnail(request, tools, where),
        )
    tools.progress.say(number, f"Generating image {request.index}/{total}: {request.label}", "generating")
    started = time.monotonic()
    usage = None  # an invalid payload was still billed; keep its usage
    waiting = f"Waiting for the OpenAI rate limit: image {request.index}/{total} ({request.label})"
    on_wait = lambda _s: tools.progress.say(number, waiting, "generating")  # noqa: E731
    try:
        b64, usage, answer = _render(request, tools, where, on_wait)
        tools.log.info(f"{MARK_BASE64} {where} attempts={answer.attempts} rate_limited={answer.rate_limited}")
        image = read_image(decode_base64(b64), request.output_format, request.api_params.get("output_compression"))
    except _Blocked as exc:
        return _failure(request, "blocked", str(exc), "ModerationBlocked", started, tools, where)
    except openai.OpenAIError as exc:
        if is_moderation_block(exc):
            return _failure(request, "blocked", api_error_text(exc), "ModerationBlocked", started, tools, where)
        return _failure(request, "failed", api_error_text(exc), type(exc).__name__, started, tools, where)
    except InvalidImageData as exc:
        return _failure(request, "failed", str(exc), "InvalidImageData", started, tools, where, usage=usage)
    except (ModelRetired, ImageConfigError) as exc:
        return _failure(request, "failed", str(exc), type(exc).__name__, started, tools, where)
    # False: another writer stored this key first, so the thumbnail must come from their bytes, not ours.
    ours = tools.s3.put_once(request.key, image.data, CONTENT_TYPES[image.format])
    if ours and tools.artifacts:  # another writer's bytes get their row from HEAD at the final recording
        stored = image_object(tools.s3, request, step_name, image.content_type, len(image.data))
        tools.artifacts.image_stored(stored)
    tools.log.info(f"{MARK_CONVERTED} {where} url={request.url}")
    tools.progress.say(number, f"Generated image {request.index}/{total}: {request.label}", "generating")
    return GeneratedImage(
        request=request,
        outcome="generated",
        content_type=image.content_type,
        size_bytes=len(image.data),
        width=image.width,
        height=image.height,
        converted_from=image.converted_from,
        usage=usage,
        latency_s=round(time.monotonic() - started, 3),
        model=answer.model,
        replacements=answer.replacements,
        rate_limited=answer.rate_limited,
        rate_limit_wait_s=answer.rate_limit_wait_s,
        thumbnail_url=_thumbnail(request, tools, where, original=image.data if ours else None),
    )


def _thumbnail(
    request: ImageRequest, tools: GenerationTools, where: str, original: bytes | None = None
) -> str | None:
    """The URL of the image's thumbnail, made at most once: a reused image keeps the one a former run stored,
    or gets one from its original read back from S3. None (and a warning) when it could not be made: a preview
    is never worth failing an image that is already paid for and stored."""
    key = thumbnail_key(request.key)
    try:
        if original is None:
            if tools.s3.head(key) is not None:
                return tools.s3.public_url(key)
            original = tools.s3.get_bytes(request.key)
            if original is None:
                raise FileNotFoundError(f"original {request.key} is gone")
        tools.s3.put_once(key, make_thumbnail(original), THUMBNAIL_TYPE)
        return tools.s3.public_url(key)
    except Exception as exc:  # any failure (decode, S3, memory) costs only the preview
        tools.log.warning(f"thumbnail not stored {where} key={key}: {type(exc).__name__}: {exc}")
        return None


def _render(request: ImageRequest, tools: GenerationTools, where: str, on_wait) -> tuple[str | None, CallUsage, CallOutcome]:
    if request.path == "images_api":
        result = tools.openai.generate_image(
            model=request.model, prompt=request.prompt, params=request.api_params, log=tools.log, where=where, on_wait=on_wait
        )
        return result.b64, result.usage, result
    response = tools.openai.respond(
        log=tools.log,
        where=f"{where} purpose=image_tool",
        model=request.responses_model or tools.openai.default_text_model,
        instructions=request.responses_instructions or "",
        input_text=request.prompt,
        tools=[request.api_params],
        tool_choice={"type": "image_generation"},
        on_wait=on_wait,
    )
    usage = response.usage.plus(response.tool_image_usage) if response.tool_image_usage else response.usage
    call = next((i for i in response.tool_images if i.status == "completed" and i.b64), None)
    if call is None:
        failed = next((i for i in response.tool_images if i.error_code), None)
        if failed and failed.error_code in MODERATION_CODES:
            raise _Blocked(failed.error_message or failed.error_code)
        reason = failed.error_message if failed else (response.error or "the model returned no image_generation_call")
        raise InvalidImageData(reason)
    return call.b64, usage, response.model_copy(update={"model": response.image_model or response.model})


def _failure(request, outcome, reason, error_type, started, tools, where, usage=None) -> GeneratedImage:
    log = tools.log.warning if outcome == "blocked" else tools.log.error
    log(f"image {outcome} {where}: {reason}")
    return GeneratedImage(
        request=request,
        outcome=outcome,
        error=reason,
        error_type=error_type,
        usage=usage,
        latency_s=round(time.monotonic() - started, 3),
    )

