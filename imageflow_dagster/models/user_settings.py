from typing import Any

from pydantic import BaseModel, ConfigDict


class PromptOverride(BaseModel):
    """One entry of a tenant's `prompt_overrides`, read as leniently as the seed's worker reads it
    (services/prompt_overrides.py `normalize_prompt_overrides`): blank or non-string texts and a non-boolean
    `enabled` count as unset, and any other key (a model, a service tier) is ignored."""

    enabled: bool | None = None
    instructions: str | None = None
    prompt: str | None = None

    @classmethod
    def from_raw(cls, raw: Any) -> "PromptOverride | None":
        if not isinstance(raw, dict):
            return None
        enabled = raw.get("enabled")
        override = cls(
            enabled=enabled if isinstance(enabled, bool) else None,
            instructions=_text(raw.get("instructions")),
            prompt=_text(raw.get("prompt")),
        )
        return override if override.model_dump(exclude_none=True) else None

    @property
    def active(self) -> bool:
        """Replaces something: not switched off, and at least one text to use."""
        return self.enabled is not False and bool(self.instructions or self.prompt)


class UserSettings(BaseModel):
    """A row of the seed's user-settings table (key `tenant_id`), written by its API's settings page. imageflow
    reads only `prompt_overrides`; every other field is kept untouched."""

    model_config = ConfigDict(extra="allow")

    tenant_id: str
    prompt_overrides: Any = None

    def prompt_override(self, key: str) -> PromptOverride | None:
        overrides = self.prompt_overrides
        return PromptOverride.from_raw(overrides.get(key)) if isinstance(overrides, dict) else None


def _text(value: Any) -> str | None:
    # Kept as written (not stripped), like the seed; whitespace only means "not set".
    return value if isinstance(value, str) and value.strip() else None
