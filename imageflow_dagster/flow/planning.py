"""The planning phase of AI generation steps: text steps and image planners (steps/runner.py runs a job's steps
in dependency order, independent steps in parallel, whatever their kind).

Image URLs are derived from the requests, so a step that depends on an image step gets that step's URLs in its
context without waiting for the images; every image of the job is then rendered together afterwards.
"""

import json
import logging
import time
from dataclasses import dataclass, field

import openai

from imageflow_dagster.flow import context as ctx
from imageflow_dagster.flow import planner
from imageflow_dagster.flow import prompt_overrides as overrides
from imageflow_dagster.flow.image_params import ImageConfigError, fit_image_params
from imageflow_dagster.flow.image_requests import build_image_request, images_api_params
from imageflow_dagster.flow.progress import LiveProgress
from imageflow_dagster.flow.response_cache import ResponseCache
from imageflow_dagster.ids import short_hash, utc_now_iso
from imageflow_dagster.lifecycle import ModelRetired
from imageflow_dagster.models import PromptOverride
from imageflow_dagster.models.pipeline import CallUsage, JobIdentity, StepPlan
from imageflow_dagster.models.workflow import ImageToolConfig, WorkflowStep
from imageflow_dagster.resources.dynamodb import DynamoDBResource
from imageflow_dagster.resources.openai_client import OpenAIResource, ResponseResult, api_error_text
from imageflow_dagster.resources.s3 import ImageflowS3Resource
from imageflow_dagster.steps.webhook_http import WebhookPolicy


@dataclass
class PlanningTools:
    openai: OpenAIResource
    s3: ImageflowS3Resource
    cache: ResponseCache
    progress: LiveProgress
    log: logging.Logger
    # Steps to ask again (a step rerun and its dependents): no replayed answers, fresh image keys under `variant`.
    fresh_steps: frozenset[int] = frozenset()
    variant: str = ""
    webhooks: WebhookPolicy = field(default_factory=WebhookPolicy)
    max_handoff_depth: int = 5  # IMAGEFLOW_MAX_HANDOFF_DEPTH: handoffs in a row that may lead to one job
    db: DynamoDBResource | None = None  # handoff steps read the target workflow and write its job
    planner_override: PromptOverride | None = None  # the tenant's, from the seed's user settings

    def image_variant(self, plan: StepPlan) -> str:
        return self.variant if plan.index in self.fresh_steps else ""


def plan_ai_step(
    job: JobIdentity,
    fields: dict,
    index: int,
    step: WorkflowStep,
    deps: list[int],
    done: dict[int, StepPlan],
    tools: PlanningTools,
) -> StepPlan:
    started = time.monotonic()
    tool = step.image_tool()
    requested = step.model or tools.openai.default_text_model
    plan = StepPlan(
        index=index,
        number=index + 1,
        name=step.step_name,
        kind="image" if tool else "text",
        model=requested,
        requested_model=requested,
        instructions=step.instructions,
        depends_on=deps,
        started_at=utc_now_iso(),
    )
    blocked = blocked_by(deps, done)
    if blocked:
        return not_run(plan, blocked)
    plan.context = ctx.step_context(fields, [_dependency_block(done[d]) for d in deps])
    where = f"job={job.job_id} step={plan.number} ({plan.name})"
    try:
        plan.model = _in_service(plan, plan.model, tools)
        if tool is None:
            _run_text_step(plan, step, tools, where)
        else:
            _plan_image_step(job, plan, tool, tools, where)
    except (openai.OpenAIError, ModelRetired, ImageConfigError) as exc:
        reason = api_error_text(exc) if isinstance(exc, openai.OpenAIError) else str(exc)
        plan.status, plan.error, plan.error_type = "failed", reason, type(exc).__name__
        tools.log.error(f"planning failed {where}: {plan.error}")
    plan.duration_ms = int((time.monotonic() - started) * 1000)
    return plan


def _in_service(plan: StepPlan, model: str, tools: PlanningTools) -> str:
    """`model`, or its successor once it is past its shutdown date; the swap is listed on the plan."""
    used, replacements = tools.openai.model_in_service(model)
    plan.replacements += replacements
    return used


def _took(plan: StepPlan, result: ResponseResult) -> None:
    """Keep what the call reports: the model that answered (a successor after a 404), waits and 429s."""
    plan.usage, plan.replayed = result.usage, result.replayed
    plan.model = result.model or plan.model
    if not result.replayed:
        plan.replacements += [r for r in result.replacements if r not in plan.replacements]
        plan.rate_limited += result.rate_limited
        plan.rate_limit_wait_s = round(plan.rate_limit_wait_s + result.rate_limit_wait_s, 3)


def blocked_by(deps: list[int], done: dict[int, StepPlan]) -> StepPlan | None:
    """The first dependency that did not succeed: a step whose input is missing is not run."""
    return next((done[d] for d in deps if done[d].status != "ok"), None)


def not_run(plan: StepPlan, failed: StepPlan) -> StepPlan:
    plan.status = "skipped"
    plan.error = f"not run because step {failed.number} ({failed.name}) did not succeed"
    plan.error_type = "DependencyFailed"
    return plan


def _dependency_block(dep: StepPlan) -> str:
    return ctx.dependency_block(dep.number, dep.name, planned_output(dep), [r.url for r in dep.requests])


def planned_output(dep: StepPlan) -> str:
    """What a finished step hands to the steps that depend on it: its text, or for an image step the seed's image
    JSON with the planned URLs (known before the images are rendered)."""
    if dep.kind != "image":
        return dep.output_text or ""
    images = [{"label": r.label, "prompt": r.prompt, "url": r.url} for r in dep.requests]
    return ctx.image_step_output(dep.image_model or "", dep.image_config or {}, images)


def _run_text_step(plan: StepPlan, step: WorkflowStep, tools: PlanningTools, where: str) -> None:
    tools.progress.say(plan.number, f"Running {plan.name}...", "streaming")
    result = _cached_respond(
        tools,
        fresh=plan.index in tools.fresh_steps,
        where=f"{where} purpose=text",
        model=plan.model,
        instructions=step.instructions + ctx.PERSONALIZATION,
        input_text=plan.context,
        tools=step.text_tools() or None,
        reasoning_effort=step.reasoning_effort,
        max_output_tokens=step.max_output_tokens,
        on_wait=_waiting(plan, tools, "streaming"),
    )
    _took(plan, result)
    if result.status not in (None, "completed") or not result.text.strip():
        plan.status, plan.error_type = "failed", "EmptyOutput"
        plan.error = result.error or f"the model returned no text (status {result.status})"
        return
    plan.output_text = result.text


def _plan_image_step(job: JobIdentity, plan: StepPlan, tool: ImageToolConfig, tools: PlanningTools, where: str) -> None:
    plan.requested_image_model = tool.model or tools.openai.default_image_model
    image_model = _in_service(plan, plan.requested_image_model, tools)
    plan.image_model, plan.image_config = image_model, tool.seed_config()
    fit_image_params(image_model, images_api_params(tool))  # an impossible config fails before any call
    if not image_model.startswith("gpt-image"):
        plan.image_path = "responses_tool"
        plan.requests = [
            build_image_request(
                job,
                step_index=plan.index,
                index=1,
                label=plan.name or "image",
                prompt=plan.context,
                model=image_model,
                tool=tool,
                public_url=tools.s3.public_url,
                responses_model=plan.model,
                responses_instructions=plan.instructions + ctx.PERSONALIZATION,
                variant=tools.image_variant(plan),
            )
        ]
        return
    plan.image_path = "images_api"
    tools.progress.say(plan.number, "Planning image prompts...", "planning")
    images = _planned_images(plan, tools, where)
    plan.requests = [
        build_image_request(
            job,
            step_index=plan.index,
            index=k,
            label=image.label,
            prompt=image.prompt,
            model=image_model,
            tool=tool,
            public_url=tools.s3.public_url,
            variant=tools.image_variant(plan),
        )
        for k, image in enumerate(images, start=1)
    ]
    noun = "prompt" if len(images) == 1 else "prompts"
    tools.progress.say(plan.number, f"Planned {len(images)} image {noun}.", "planning")


def _planned_images(plan: StepPlan, tools: PlanningTools, where: str) -> list[planner.PlannedImage]:
    limit = tools.openai.max_images_per_step
    instructions = plan.instructions + ctx.PERSONALIZATION
    prompts = _planner_prompts(plan, instructions, limit, tools)
    result = _cached_respond(
        tools,
        fresh=plan.index in tools.fresh_steps,
        where=f"{where} purpose=planner",
        model=plan.model,
        instructions=prompts.instructions,
        input_text=prompts.input,
        text_format=planner.PLAN_SCHEMA,
        on_wait=_waiting(plan, tools, "planning"),
    )
    _took(plan, result)
    if prompts.overridden:  # recorded in the execution step, as the seed records its planner request
        plan.prompt_override = list(prompts.overridden)
        plan.planner_request = {"model": plan.model, "instructions": prompts.instructions, "input": prompts.input}
    plan.planner_raw = result.text[:4000]
    images = planner.parse_plan(result.text, limit)
    if not images:
        tools.log.warning(f"planner returned no valid prompts {where}; using the fallback prompt")
        plan.planner_fallback = True
        images = planner.fallback_plan(plan.name, instructions, plan.context)
    return images


def _planner_prompts(
    plan: StepPlan, instructions: str, limit: int, tools: PlanningTools
) -> overrides.PlannerPrompts:
    # The seed's image steps see their whole context as both `context` and `full_context`, and no previous one.
    variables = {
        "step_name": plan.name,
        "step_instructions": instructions,
        "full_context": plan.context,
        "context": plan.context,
        "previous_context": "",
    }
    default_input = planner.planner_input(plan.name, instructions, plan.context)
    defaults = planner.planner_instructions(limit), default_input
    return overrides.planner_prompts(tools.planner_override, *defaults, variables)


def _waiting(plan: StepPlan, tools: PlanningTools, status: str):
    line = f"Waiting for the OpenAI rate limit: {plan.name}"
    return lambda _seconds: tools.progress.say(plan.number, line, status)


def _cached_respond(kit: PlanningTools, *, where: str, fresh: bool, on_wait=None, **request) -> ResponseResult:
    """Answer from the job's response cache when this exact request was answered before, unless `fresh`; a fresh
    answer replaces the cached one, so later reruns replay it."""
    request_hash = short_hash(json.dumps(request, sort_keys=True, default=str), length=32)
    cached = None if fresh else kit.cache.get(request_hash)
    if cached is not None:
        kit.log.info(f"replaying cached answer {where} request={request_hash[:12]}")
        model = cached.get("model") or request["model"]
        usage = CallUsage(model=model)  # no call, no cost
        return ResponseResult(text=cached["text"], status=cached["status"], usage=usage, model=model, replayed=True)
    result = kit.openai.respond(log=kit.log, where=where, on_wait=on_wait, **request)
    if result.status in (None, "completed") and result.text.strip():
        kit.cache.put(request_hash, {"text": result.text, "status": result.status, "model": result.model, "usage": result.usage.model_dump()})
    return result

