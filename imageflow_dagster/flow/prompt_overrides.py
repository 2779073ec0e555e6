"""A tenant's image-planner override: `prompt_overrides.image_prompt_planner` in the seed's user-settings table,
used the way the seed's worker uses it (services/prompt_overrides.py, services/ai/image_generator.py `plan`).

- Read once per run from the row keyed by the job's tenant; no row, no entry or a row that cannot be read means
  imageflow's own planner prompts (the seed's worker also carries on without its settings).
- Only `instructions`, `prompt` and `enabled` count: `enabled: false` switches the override off; `instructions`
  replaces the planner's instructions, `prompt` its input; whichever is unset keeps imageflow's. Model, service
  tier and the like cannot be overridden (the seed drops them too).
- `{{name}}` placeholders in the tenant's texts are filled with step_name, step_instructions, full_context,
  context, previous_context and planner_input (imageflow's own planner input); any other placeholder stays as
  written. Values are inserted once, never scanned again for placeholders.
- The seed puts its "runs unattended" guardrail in front of every planner instruction unless the text already
  speaks of it; a tenant's instructions get imageflow's guardrail in front on the same rule.
"""

import logging
import re
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError
from pydantic import ValidationError

from imageflow_dagster.models import PromptOverride, UserSettings
from imageflow_dagster.resources.dynamodb import DynamoDBResource, TableError

PLANNER_KEY = "image_prompt_planner"
SETTING = f"prompt_overrides.{PLANNER_KEY}"
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z0-9_.-]+)\s*\}\}")
# Phrases that tell the seed's worker the instructions already forbid waiting for a person.
_SAYS_UNATTENDED = ("ask for confirmation", "no user interaction", "no user input", "no human-in-the-loop")
UNATTENDED = (
    "This workflow runs unattended from start to end, with no user interaction: nobody will answer a question, so "
    "do not stop to ask for anything. When something is missing or unclear, make a reasonable assumption and go on.\n\n"
)


@dataclass(frozen=True)
class PlannerPrompts:
    instructions: str
    input: str
    overridden: tuple[str, ...] = ()  # which of the tenant's fields were used: "instructions", "prompt"


def load_planner_override(db: DynamoDBResource, tenant_id: str, log: logging.Logger) -> PromptOverride | None:
    """The tenant's override when it replaces anything, else None."""
    table = db.user_settings_table
    try:
        raw = db.get_item(table, {"tenant_id": tenant_id}, consistent=False)
    except (TableError, BotoCoreError) as exc:
        log.warning(f"tenant {tenant_id}: settings not read ({exc}); the image planner uses imageflow's prompts")
        return None
    if raw is None:
        return None
    try:
        override = UserSettings.model_validate(raw).prompt_override(PLANNER_KEY)
    except ValidationError:
        log.warning(f"tenant {tenant_id}: its row in {table} is malformed; the image planner uses imageflow's prompts")
        return None
    return override if override is not None and override.active else None


def planner_prompts(
    override: PromptOverride | None, instructions: str, planner_input: str, variables: dict[str, str | None]
) -> PlannerPrompts:
    """What the planner is sent: imageflow's `instructions` and `planner_input`, or the tenant's texts filled in."""
    if override is None or not override.active:
        return PlannerPrompts(instructions, planner_input)
    values = {**variables, "planner_input": planner_input}
    used: list[str] = []
    if override.instructions:
        instructions = with_guardrail(fill(override.instructions, values))
        used.append("instructions")
    if override.prompt:
        planner_input = fill(override.prompt, values)
        used.append("prompt")
    return PlannerPrompts(instructions, planner_input, tuple(used))


def fill(template: str, variables: dict[str, str | None]) -> str:
    def value(match: re.Match[str]) -> str:
        found = variables.get(match.group(1))
        return match.group(0) if found is None else str(found)

    return _PLACEHOLDER.sub(value, template)


def with_guardrail(instructions: str) -> str:
    lowered = instructions.lower()
    return instructions if any(p in lowered for p in _SAYS_UNATTENDED) else UNATTENDED + instructions
