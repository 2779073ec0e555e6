"""What a step sees: the form submission with field labels, then its dependencies' outputs and image URLs.

The text format is the seed's, so prompts written for the seed keep working.
"""

import json
from typing import Any

from imageflow_dagster.models import Form, Submission

PERSONALIZATION = (
    "\n\nPersonalize the result: the context holds a form submission from one specific person. Use their name, "
    "role and answers so the output reads as made for them, not as a generic template."
)


def labeled_submission(submission: Submission, form: Form | None) -> dict[str, Any]:
    """Field id -> label mapping applied to the submission; unknown fields keep their id."""
    labels = form.labels() if form else {}
    return {labels.get(field_id, field_id): value for field_id, value in submission.submission_data.items()}


def submission_block(fields: dict[str, Any]) -> str:
    lines = [f"{label}: {_as_text(value)}" for label, value in fields.items()]
    return "=== Form Submission ===\n" + "\n".join(lines)


def dependency_block(number: int, name: str, output: str, image_urls: list[str]) -> str:
    block = f"\n=== Step {number}: {name} ===\n{output}"
    if image_urls:
        block += "\n\nGenerated Images:\n" + "\n".join(f"- {url}" for url in sorted(set(image_urls)))
    return block


def step_context(fields: dict[str, Any], dependency_blocks: list[str]) -> str:
    return "\n".join([submission_block(fields), *dependency_blocks])


def image_step_output(image_model: str, image_config: dict[str, Any], images: list[dict[str, Any]], **extra) -> str:
    """The JSON an image step outputs (seed shape); the seed's UI recognises image-only outputs by it."""
    body: dict[str, Any] = {"image_model": image_model, "image_config": image_config, "images": images}
    body.update({k: v for k, v in extra.items() if v})
    return json.dumps(body, indent=2)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_as_text(v) for v in value)
    return json.dumps(value, default=str) if isinstance(value, dict) else str(value)
