"""Image requests and their S3 keys. A key is derived from the request itself (step, index, and a hash of
model + prompt + image config), so the URL is known before the image exists and a rerun finds it again."""

import json
from collections.abc import Callable
from typing import Any

from imageflow_dagster.flow.image_data import EXTENSIONS
from imageflow_dagster.ids import short_hash
from imageflow_dagster.models.pipeline import ImageRequest, JobIdentity
from imageflow_dagster.models.workflow import AUTO, ImageToolConfig
from imageflow_dagster.resources.image_params import fit_image_params


def images_api_params(tool: ImageToolConfig) -> dict[str, Any]:
    """Images API arguments besides model/prompt/n: only what is set and not `auto`; never `response_format`.

    `output_compression` only applies to JPEG and WebP; the API rejects it for PNG, so it is not sent there.
    """
    params: dict[str, Any] = {}
    if tool.size != AUTO:
        params["size"] = tool.size
    if tool.quality != AUTO:
        params["quality"] = tool.quality
    if tool.background and tool.background != AUTO:
        params["background"] = tool.background
    if tool.format:
        params["output_format"] = tool.format
    if tool.compression is not None and tool.format in ("jpeg", "webp"):
        params["output_compression"] = tool.compression
    return params


def image_tool_param(tool: ImageToolConfig, model: str) -> dict[str, Any]:
    """The `image_generation` tool definition for the Responses path."""
    return {"type": "image_generation", "model": model, **fit_image_params(model, images_api_params(tool))}


def image_key(job: JobIdentity, step_number: int, index: int, request_hash: str, output_format: str) -> str:
    return f"{job.prefix}/step_{step_number}_image_{index}_{request_hash}.{EXTENSIONS[output_format]}"


def build_image_request(
    job: JobIdentity,
    *,
    step_index: int,
    index: int,
    label: str,
    prompt: str,
    model: str,
    tool: ImageToolConfig,
    public_url: Callable[[str], str],
    responses_model: str | None = None,
    responses_instructions: str | None = None,
    variant: str = "",
) -> ImageRequest:
    """`variant` makes a fresh key (so a fresh image) for the same request: a step rerun asks for a new one."""
    path = "responses_tool" if responses_model else "images_api"
    params = image_tool_param(tool, model) if responses_model else fit_image_params(model, images_api_params(tool))
    request_hash = short_hash(
        model, prompt, json.dumps(params, sort_keys=True), responses_model or "", responses_instructions or "",
        *([variant] if variant else []),
    )
    key = image_key(job, step_index + 1, index, request_hash, tool.output_format)
    return ImageRequest(
        step_index=step_index,
        index=index,
        label=label,
        prompt=prompt,
        model=model,
        path=path,
        api_params=params,
        output_format=tool.output_format,
        key=key,
        url=public_url(key),
        request_hash=request_hash,
        responses_model=responses_model,
        responses_instructions=responses_instructions,
    )
