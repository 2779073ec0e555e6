"""Which model a call really uses: OpenAI shuts models down on published dates and names their successors.

The table ships in `model_lifecycle.json` (beside `pricing.json`). Operators add or override entries without a
release through `IMAGEFLOW_MODEL_REPLACEMENTS` (settings.py; the OpenAI resource passes it in as `override`): inline
JSON or the path of a JSON file, each entry either a replacement name or
`{"replacement": ..., "shutdown": "YYYY-MM-DD"}`.
"""

import json
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from pathlib import Path

OVERRIDE_ENV = "IMAGEFLOW_MODEL_REPLACEMENTS"  # named in messages
_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{4}-\d{2}-\d{2}$")


class ModelRetired(RuntimeError):
    """A model is gone and nothing says what replaces it."""

    def __init__(self, model: str, why: str):
        super().__init__(
            f"model {model} {why} and has no known replacement; name a current model in the workflow, "
            f"or add a replacement for {model} to {OVERRIDE_ENV}"
        )
        self.model = model


@dataclass(frozen=True)
class Entry:
    shutdown: date | None
    replacement: str | None


@dataclass(frozen=True)
class Replacement:
    """One model swapped for another, and why; listed in Dagster metadata and the execution steps."""

    requested: str
    used: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"requested": self.requested, "used": self.used, "reason": self.reason}


def entry(model: str, override: str = "") -> Entry | None:
    table = _table(override)
    if model in table:
        return table[model]
    snapshot = _SNAPSHOT.match(model)  # "gpt-5-2025-08-07" is retired with "gpt-5"
    return table.get(snapshot.group("base")) if snapshot else None


def resolve(model: str, today: date, override: str = "") -> Replacement | None:
    """The replacement for a model that is past its shutdown date on `today`; None when it is still served.
    `override`: the operator's entries (IMAGEFLOW_MODEL_REPLACEMENTS), over the shipped table."""
    found = entry(model, override)
    if found is None or found.shutdown is None or today < found.shutdown:
        return None
    if not found.replacement:
        raise ModelRetired(model, f"was shut down on {found.shutdown.isoformat()}")
    used = _follow(found.replacement, today, override)
    return Replacement(model, used, f"{model} shut down on {found.shutdown.isoformat()}")


def after_not_found(model: str, today: date, override: str = "") -> Replacement:
    """The replacement to try once after OpenAI answered 404 `model_not_found`, whatever the date says."""
    found = entry(model, override)
    if found is None or not found.replacement:
        raise ModelRetired(model, "is not available from OpenAI (404 model_not_found)")
    used = _follow(found.replacement, today, override)
    return Replacement(model, used, f"OpenAI answered 404 model_not_found for {model}")


def routable_models(override: str = "") -> set[str]:
    """Every model a replacement can lead to: each must have a price."""
    return {e.replacement for e in _table(override).values() if e.replacement}


def _follow(model: str, today: date, override: str) -> str:
    """A replacement that is itself retired by `today` leads on to its own replacement."""
    seen = {model}
    while (found := entry(model, override)) and found.replacement and found.shutdown and today >= found.shutdown:
        if found.replacement in seen:
            break
        model = found.replacement
        seen.add(model)
    return model


@lru_cache(maxsize=4)
def _table(override: str) -> dict[str, Entry]:
    shipped = json.loads(resources.files("imageflow_dagster").joinpath("model_lifecycle.json").read_text())
    table = {name: _entry(name, raw) for name, raw in shipped["models"].items()}
    for name, raw in _override(override).items():
        changed = _entry(name, raw)
        kept = table.get(name)
        # A bare replacement name keeps the shipped shutdown date; an object may set or move it.
        if kept and isinstance(raw, str):
            changed = Entry(shutdown=kept.shutdown, replacement=changed.replacement)
        table[name] = changed
    return table


def _override(raw: str) -> dict:
    raw = raw.strip()
    if not raw:
        return {}
    text = raw if raw.startswith("{") else Path(raw).read_text()
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"{OVERRIDE_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ValueError(f"{OVERRIDE_ENV} must be a JSON object of model -> replacement")
    return loaded.get("models", loaded)


def _entry(model: str, raw) -> Entry:
    if isinstance(raw, str) or raw is None:
        return Entry(shutdown=None, replacement=raw)
    if not isinstance(raw, dict):
        raise ValueError(f"lifecycle entry for {model} must be a model name or an object, got {raw!r}")
    shutdown = raw.get("shutdown")
    try:
        day = date.fromisoformat(shutdown) if shutdown else None
    except ValueError as exc:
        raise ValueError(f"lifecycle entry for {model}: shutdown must be YYYY-MM-DD, got {shutdown!r}") from exc
    return Entry(shutdown=day, replacement=raw.get("replacement"))
