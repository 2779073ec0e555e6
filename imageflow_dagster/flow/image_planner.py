"""The planner: one Responses call that turns a step's instructions and context into image prompts."""

import json
from dataclasses import dataclass

# The Images API rejects prompts over 32,000 characters.
IMAGE_PROMPT_LIMIT = 32_000

PLANNER_INSTRUCTIONS = """You plan images for an image-generation model. Read the step instructions and the context, \
decide which distinct images the step asks for, and write one prompt per image.

Answer with JSON only, shaped as {"images": [{"label": "...", "prompt": "..."}]}:
- label: a few words naming the image (for example "Hero banner" or "Module 2 thumbnail");
- prompt: a complete, self-contained description the image model can render without seeing anything else: \
subject, composition, style, colours, any text that must appear, and brand cues taken from the context.

Plan between 1 and {max_images} images: as many as the instructions ask for, one when they ask for a single image. \
The workflow runs unattended, so never ask questions; make reasonable assumptions instead."""

PLAN_SCHEMA = {
    "type": "json_schema",
    "name": "image_plan",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "images": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"label": {"type": "string"}, "prompt": {"type": "string"}},
                    "required": ["label", "prompt"],
                    "additionalProperties": False,
                },
            }
        },
        "required": ["images"],
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class PlannedImage:
    label: str
    prompt: str


def planner_instructions(max_images: int) -> str:
    return PLANNER_INSTRUCTIONS.replace("{max_images}", str(max_images))


def planner_input(step_name: str, step_instructions: str, context: str) -> str:
    return f"Step name: {step_name or 'N/A'}\n\nStep instructions:\n{step_instructions}\n\nContext:\n{context}\n"


def parse_plan(text: str, max_images: int) -> list[PlannedImage]:
    """Accept strict JSON, fenced JSON or JSON inside prose; drop blank prompts; cap at `max_images`."""
    plan = _first_plan_object(text or "")
    items = plan.get("images") if plan else None
    if not isinstance(items, list):
        return []
    planned: list[PlannedImage] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        prompt = item.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            continue
        label = item.get("label")
        label = label.strip() if isinstance(label, str) and label.strip() else f"image_{len(planned) + 1}"
        planned.append(PlannedImage(label=label[:200], prompt=prompt.strip()[:IMAGE_PROMPT_LIMIT]))
        if len(planned) == max_images:
            break
    return planned


def fallback_plan(step_name: str, step_instructions: str, context: str) -> list[PlannedImage]:
    """One prompt from the instructions and context, cut to what the Images API accepts."""
    prompt = f"{step_instructions}\n\n{context}".strip() or "Generate an image that matches the requested subject."
    return [PlannedImage(label=step_name or "image", prompt=prompt[:IMAGE_PROMPT_LIMIT])]


def _first_plan_object(text: str) -> dict | None:
    """The first JSON object in `text` that has an `images` key (models wrap JSON in fences or prose)."""
    try:
        whole = json.loads(text)
        if isinstance(whole, dict):
            return whole
    except ValueError:
        pass
    decoder = json.JSONDecoder()
    first_object = None
    for start, char in enumerate(text):
        if char != "{":
            continue
        try:
            candidate, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(candidate, dict):
            if "images" in candidate:
                return candidate
            first_object = first_object or candidate
    return first_object
