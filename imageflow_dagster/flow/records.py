"""Seed-format records built from a job's plan and images: step outcomes, step output files, artifacts,
usage rows and the execution-steps list."""

import json
import re
from dataclasses import dataclass
from typing import Any

from imageflow_dagster.flow.context import image_step_output
from imageflow_dagster.flow.errors import step_failure_message
from imageflow_dagster.flow.prompt_overrides import SETTING
from imageflow_dagster.ids import stable_id, utc_now_iso
from imageflow_dagster.models import Artifact, ExecutionStep, UsageRecord
from imageflow_dagster.models.pipeline import (
    CallUsage,
    GeneratedImage,
    JobIdentity,
    JobPlan,
    StepPlan,
    StoredObject,
)

TEXT_SERVICE = "openai_worker_report"
PLANNER_SERVICE = "openai_worker_image_generation"
IMAGES_SERVICE = "openai_image_generation"
EXECUTION_STEPS_FILE = "execution_steps.json"


@dataclass(frozen=True)
class StepOutcome:
    success: bool
    error: str | None = None  # the seed's "Step {n} ({name}) failed: ..." text
    error_type: str | None = None


def images_of(step: StepPlan, generated: list[GeneratedImage]) -> list[GeneratedImage]:
    return [g for g in generated if g.request.step_index == step.index]


def step_outcome(step: StepPlan, images: list[GeneratedImage]) -> StepOutcome:
    """A step fails on a planning error, on any image that failed, or when every image was blocked."""
    if step.status != "ok":
        return StepOutcome(False, step_failure_message(step.number, step.name, step.error or step.status), step.error_type)
    failed = [g for g in images if g.outcome == "failed"]
    if failed:
        first = failed[0]
        more = f" ({len(failed) - 1} more image(s) failed)" if len(failed) > 1 else ""
        reason = f"image {first.request.index} ({first.request.label}): {first.error}{more}"
        return StepOutcome(False, step_failure_message(step.number, step.name, reason), first.error_type)
    if step.kind == "image" and images and all(g.outcome == "blocked" for g in images):
        reason = f"all {len(images)} image(s) were blocked by moderation: {images[0].error}"
        return StepOutcome(False, step_failure_message(step.number, step.name, reason), "ModerationBlocked")
    return StepOutcome(True)


def used_image_model(step: StepPlan, images: list[GeneratedImage]) -> str | None:
    """The model that rendered the step's images: the planned one, or its successor after a 404."""
    return next((g.model for g in images if g.model), step.image.model if step.image else None)


def unique_replacements(replacements: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each model swap once, in the order first made (every image of a step reports the same one)."""
    return list({tuple(swap.items()): swap for swap in replacements}.values())


def image_step_json(step: StepPlan, images: list[GeneratedImage]) -> str:
    stored = [{"label": g.request.label, "prompt": g.request.prompt, "url": g.request.url} for g in images if g.stored]
    blocked = [
        {"label": g.request.label, "prompt": g.request.prompt, "reason": g.error} for g in images if g.outcome == "blocked"
    ]
    model = used_image_model(step, images) or ""
    return image_step_output(model, step.image.config or {}, stored, blocked_images=blocked)


def step_output_document(step: StepPlan, images: list[GeneratedImage]) -> tuple[str, bytes, str] | None:
    """(file name, body, content type) of the step's `step_output` artifact, or None when it has no output."""
    if step.kind == "text":
        if not step.output_text:
            return None
        extension, content_type = _text_kind(step)
        return _output_name(step, extension), step.output_text.encode(), content_type
    if not any(g.stored for g in images):
        return None
    return _output_name(step, ".json"), image_step_json(step, images).encode(), "application/json"


def output_artifact_id(job: JobIdentity, step: StepPlan) -> str | None:
    """The id the step's `step_output` artifact row gets (ids derive from keys, so it is known before the row
    exists): a text step's once it answered, an image step's once its images are planned."""
    if step.status != "ok":
        return None
    if step.kind == "text":
        document = step_output_document(step, [])
        name = document[0] if document else None
    else:
        name = _output_name(step, ".json") if step.kind == "image" and step.image_requests else None
    return stable_id("art", job.job_id, f"{job.prefix}/{name}") if name else None


def artifact_for(job: JobIdentity, obj: StoredObject) -> Artifact:
    return Artifact(
        artifact_id=stable_id("art", job.job_id, obj.key),
        tenant_id=job.tenant_id,
        job_id=job.job_id,
        artifact_type=obj.kind,
        artifact_name=obj.name,
        s3_key=obj.key,
        s3_url=obj.s3_url,
        public_url=obj.url,
        is_public=True,
        file_size_bytes=obj.size_bytes,
        mime_type=obj.content_type,
        created_at=utc_now_iso(),
    )


def usage_record(job: JobIdentity, run_id: str, step: StepPlan, service: str, usage: CallUsage) -> UsageRecord:
    """One row per step and service and run: a rerun that calls the API again spends again, one that replays
    doesn't call and writes nothing."""
    return UsageRecord(
        usage_id=stable_id("usage", run_id, job.job_id, step.index, service),
        tenant_id=job.tenant_id,
        job_id=job.job_id,
        service_type=service,
        model=usage.model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=usage.cost_usd,
        created_at=utc_now_iso(),
    )


def image_usage(step: StepPlan, images: list[GeneratedImage]) -> CallUsage | None:
    paid = [g.usage for g in images if g.usage is not None]
    if not paid:
        return None
    total = CallUsage(model=used_image_model(step, images) or paid[0].model)
    for usage in paid:
        total = total.plus(usage.model_copy(update={"model": total.model}))
    return total


def execution_steps(
    plan: JobPlan, generated: list[GeneratedImage], artifact_ids: dict[str, str], output_keys: dict[int, str]
) -> list[dict[str, Any]]:
    """The form-submission step, then one entry per workflow step in workflow order (`ai_generation`, or the
    entry its kind recorded)."""
    records = [
        ExecutionStep(
            step_name="Form Submission",
            step_order=0,
            step_type="form_submission",
            input=plan.submission_fields,
            output=plan.submission_fields,
            timestamp=plan.started_at,
            duration_ms=0,
        )
    ]
    for step in sorted(plan.steps, key=lambda s: s.index):
        images = images_of(step, generated)
        if step.entry is not None:  # a kind that recorded itself when it ran
            records.append(ExecutionStep.model_validate(step.entry))
            continue
        artifact_id = artifact_ids.get(output_keys.get(step.index, ""))
        records.append(_ai_step(step, images, step_outcome(step, images), artifact_id))
    return [record.model_dump(mode="json") for record in records]


def _ai_step(step: StepPlan, images: list[GeneratedImage], outcome: StepOutcome, artifact_id: str | None) -> ExecutionStep:
    stored = [g for g in images if g.stored]
    ai = step.ai  # every step recorded here ran as AI generation
    record = ExecutionStep(
        step_name=step.name,
        step_order=step.number,
        step_type="ai_generation",
        success=outcome.success,
        model=ai.model,
        input=_step_input(step, images),
        output=_step_output(step, images, outcome),
        image_urls=[g.request.url for g in stored],
        usage_info=_usage_info(step, images),
        timestamp=step.started_at,
        duration_ms=step.duration_ms + _generation_ms(images),
        artifact_id=artifact_id,
    )
    if not outcome.success:
        record.error = outcome.error
        record.error_type = outcome.error_type
    record.requested_model = ai.requested_model or ai.model
    if step.kind == "image":
        record.image_model = used_image_model(step, images)
        record.requested_image_model = step.image.requested_model or step.image.model
        record.images = [_image_entry(g) for g in images]
    replacements = unique_replacements(ai.replacements + [swap for g in images for swap in g.replacements])
    if replacements:
        record.model_replacements = replacements
    return record


def _step_input(step: StepPlan, images: list[GeneratedImage]) -> dict[str, Any]:
    ai = step.ai
    details: dict[str, Any] = {"model": ai.model, "instructions": ai.instructions, "context": ai.context}
    if step.kind == "image":
        image = step.image
        details.update(image_model=used_image_model(step, images), image_path=image.path)
        details["image_config"] = image.config
        details["planner_fallback"] = image.planner_fallback
        if image.prompt_override:
            details["prompt_override"] = {"setting": SETTING, "overridden": image.prompt_override}
            details["planner_request"] = image.planner_request
    details["depends_on"] = [d + 1 for d in step.depends_on]
    return details


def _step_output(step: StepPlan, images: list[GeneratedImage], outcome: StepOutcome) -> str:
    if step.kind == "image" and step.status == "ok":
        return image_step_json(step, images)
    if not outcome.success:
        return outcome.error or ""
    return step.output_text or ""


def _image_entry(g: GeneratedImage) -> dict[str, Any]:
    entry = {"label": g.request.label, "prompt": g.request.prompt, "url": g.request.url, "status": g.outcome}
    if g.model:
        entry["model"] = g.model
    if g.rate_limited or g.rate_limit_wait_s:
        entry.update(rate_limited=g.rate_limited, rate_limit_wait_s=g.rate_limit_wait_s)
    if g.error:
        entry["error"] = g.error
    if g.converted_from:
        entry["converted_from"] = g.converted_from
    return entry


def _usage_info(step: StepPlan, images: list[GeneratedImage]) -> dict[str, Any]:
    ai = step.ai
    text = ai.usage or CallUsage(model=ai.model)
    info: dict[str, Any] = {
        "model": ai.model,
        "input_tokens": text.input_tokens,
        "output_tokens": text.output_tokens,
        "total_tokens": text.input_tokens + text.output_tokens,
        "cost_usd": text.cost_usd,
        "service_type": TEXT_SERVICE if step.kind == "text" else PLANNER_SERVICE,
        "replayed": ai.replayed,
    }
    if step.kind == "image":
        paid = image_usage(step, images) or CallUsage(model=step.image.model or "")
        info.update(
            image_model=used_image_model(step, images),
            images_generated=sum(1 for g in images if g.outcome == "generated"),
            images_reused=sum(1 for g in images if g.outcome == "reused"),
            images_blocked=sum(1 for g in images if g.outcome == "blocked"),
            image_input_tokens=paid.input_tokens,
            image_output_tokens=paid.output_tokens,
            image_cost_usd=paid.cost_usd,
            planner_cost_usd=text.cost_usd,
            cost_usd=round(text.cost_usd + paid.cost_usd, 8),
        )
    return info


def _generation_ms(images: list[GeneratedImage]) -> int:
    return int(max((g.latency_s for g in images), default=0) * 1000)


def _text_kind(step: StepPlan) -> tuple[str, str]:
    text = (step.output_text or "").strip()
    try:
        if isinstance(json.loads(text), (dict, list)):
            return ".json", "application/json"
    except ValueError:
        pass
    lowered = text.lower()
    if lowered.startswith(("<!doctype html", "<html")) or "html" in step.name.lower():
        return ".html", "text/html"
    return ".md", "text/markdown"


def _output_name(step: StepPlan, extension: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "_", step.name.lower()).strip("_") or "step"
    return f"step_{step.number}_{slug[:80]}{extension}"
