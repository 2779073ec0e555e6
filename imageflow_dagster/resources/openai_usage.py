"""Usage and cost of OpenAI answers, read from the SDK's objects (fields may be missing behind proxies)."""

from typing import Any

from imageflow_dagster import pricing
from imageflow_dagster.models.pipeline import CallUsage


def responses_usage(model: str, response, latency: float) -> CallUsage:
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


def images_usage(model: str, usage, latency: float) -> CallUsage:
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


def tool_image_usage(response, params: dict[str, Any]) -> CallUsage | None:
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
